"""An incident's lifecycle (上报 → 派单 → 处置 → 办结 → 评价): which step may follow which.

The seeds measure grid work by what happens to each report, and publish 办结率 (closure rate),
满意率 (satisfaction rate) and 反馈率 (feedback rate).  A report moves through the states of
:class:`~gridmap.incidents.Status` by *actions*, and only along :data:`TRANSITIONS`:

======================  ===========================================  ==========================
action                  from                                         to
======================  ===========================================  ==========================
``dispatch`` 派单        reported                                     dispatched
``start`` 处置           dispatched                                   in_progress
``close`` 办结           dispatched, in_progress                      closed (with a resolution)
``rate`` 评价            closed                                       rated (satisfaction 1–5)
``reject`` 不予受理       reported, dispatched                         rejected
``duplicate`` 重复       reported, dispatched, in_progress            duplicate (of another one)
``reopen`` 重新派单       closed, rated, rejected, duplicate           dispatched
``escalate`` 升级        dispatched, in_progress                      the same state, one level up
======================  ===========================================  ==========================

A close says how it ended (:class:`Resolution`): fixed, not fixed, or not ours to fix — so
closing without fixing does not count as fixed, and 办结率 cannot be inflated that way.  An
escalation keeps the state and raises who answers for the incident: its micro-grid's worker (0),
the grid leader (1), the community (2).  Anything else is refused (409) with what is allowed.

Pure rules: the store keeps each step (time, actor, note) and the service applies them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .errors import N_, Conflict, InvalidInput, Message, message
from .incidents import Status


class Action(str, Enum):
    DISPATCH = "dispatch"
    START = "start"
    CLOSE = "close"
    RATE = "rate"
    REJECT = "reject"
    DUPLICATE = "duplicate"
    REOPEN = "reopen"
    ESCALATE = "escalate"


class Resolution(str, Enum):
    """How a close ended."""

    FIXED = "fixed"
    NOT_FIXED = "not_fixed"
    NOT_OURS = "not_ours"        # not our responsibility (passed to another department)


#: (state, action) → the state after it.
TRANSITIONS: dict[tuple[Status, Action], Status] = {
    (Status.REPORTED, Action.DISPATCH): Status.DISPATCHED,
    (Status.DISPATCHED, Action.START): Status.IN_PROGRESS,
    (Status.DISPATCHED, Action.CLOSE): Status.CLOSED,
    (Status.IN_PROGRESS, Action.CLOSE): Status.CLOSED,
    (Status.CLOSED, Action.RATE): Status.RATED,
    (Status.REPORTED, Action.REJECT): Status.REJECTED,
    (Status.DISPATCHED, Action.REJECT): Status.REJECTED,
    (Status.REPORTED, Action.DUPLICATE): Status.DUPLICATE,
    (Status.DISPATCHED, Action.DUPLICATE): Status.DUPLICATE,
    (Status.IN_PROGRESS, Action.DUPLICATE): Status.DUPLICATE,
    (Status.CLOSED, Action.REOPEN): Status.DISPATCHED,
    (Status.RATED, Action.REOPEN): Status.DISPATCHED,
    (Status.REJECTED, Action.REOPEN): Status.DISPATCHED,
    (Status.DUPLICATE, Action.REOPEN): Status.DISPATCHED,
    (Status.DISPATCHED, Action.ESCALATE): Status.DISPATCHED,
    (Status.IN_PROGRESS, Action.ESCALATE): Status.IN_PROGRESS,
}
#: The states in which an incident still waits for someone (it can be overdue).
OPEN = frozenset({Status.REPORTED, Status.DISPATCHED, Status.IN_PROGRESS})
#: The states that count as 办结 (closed), for the closure rate.
DONE = frozenset({Status.CLOSED, Status.RATED})
#: Who answers for an incident at each escalation level.
ESCALATION_ROLES = (N_("grid worker"), N_("grid leader"), N_("community"))
RATINGS = range(1, 6)


@dataclass(frozen=True)
class Step:
    """One requested action on an incident, with what it carries."""

    action: Action
    actor: str
    note: str = ""
    resolution: Resolution | None = None      # close: how it ended
    rating: int | None = None                 # rate: satisfaction, 1 (bad) to 5 (very satisfied)
    duplicate_of: int | None = None           # duplicate: the original incident

    @classmethod
    def parse(cls, body: Mapping[str, object]) -> Step:
        """A step from a request body (``action``, ``actor``, ``note``, ``resolution``, ``rating``,
        ``duplicate_of``), every problem named at once."""
        problems: list[Message] = []
        action = _choice(body.get("action"), Action, "action", problems)
        actor = str(body.get("actor") or "").strip()
        if not actor:
            problems.append(message(N_("actor is missing; expected the name of who takes this step")))
        resolution = _choice(body.get("resolution"), Resolution, "resolution", problems) \
            if body.get("resolution") not in (None, "") else None
        rating = _whole(body.get("rating"), "rating", problems)
        duplicate_of = _whole(body.get("duplicate_of"), "duplicate_of", problems)
        if action is Action.CLOSE and resolution is None:
            problems.append(message(N_("a close needs a resolution: one of {choices}"),
                                    choices=", ".join(r.value for r in Resolution)))
        if action is Action.RATE and (rating is None or rating not in RATINGS):
            problems.append(message(N_("a rating needs rating=1 to 5 (5: very satisfied)")))
        if action is Action.DUPLICATE and duplicate_of is None:
            problems.append(message(N_("a duplicate needs duplicate_of: the id of the original incident")))
        note = str(body.get("note") or "")
        if len(note) > 2000 or len(actor) > 200:
            problems.append(message(N_("the note (at most 2,000 characters) or the actor (200) is too long")))
        if problems or action is None:
            raise InvalidInput(message(N_("the step is not valid")), problems)
        return cls(action=action, actor=actor, note=note, resolution=resolution, rating=rating,
                   duplicate_of=duplicate_of)


def next_state(incident_id: int, state: Status, step: Step) -> Status:
    """The state ``step`` leads to from ``state``; :class:`Conflict` (409) naming the allowed
    actions when it may not be taken."""
    after = TRANSITIONS.get((state, step.action))
    if after is None:
        allowed = [a.value for (s, a) in TRANSITIONS if s is state]
        raise Conflict(message(N_("incident {id} is {state}: {action} is not allowed; allowed: {allowed}"),
                               id=incident_id, state=state.value, action=step.action.value,
                               allowed=", ".join(allowed) or N_("nothing")))
    if step.action is Action.DUPLICATE and step.duplicate_of == incident_id:
        raise Conflict(message(N_("incident {id} cannot be a duplicate of itself"), id=incident_id))
    return after


#: Hours to close an incident of a category the deployment does not name (三天: three days).
DEFAULT_DEADLINE_HOURS = 72.0


@dataclass(frozen=True)
class Deadlines:
    """How long each category's incidents may take from report to close, in hours
    (``GRIDMAP_DEADLINES``, e.g. ``illegal_parking=4,flying_cable=24,*=72``; ``*`` is every other
    category).  On-time and overdue are judged against the deadlines in force when asked."""

    hours: Mapping[str, float] = field(default_factory=dict)
    default_hours: float = DEFAULT_DEADLINE_HOURS

    @classmethod
    def parse(cls, text: str) -> Deadlines:
        hours: dict[str, float] = {}
        default = DEFAULT_DEADLINE_HOURS
        for part in (p.strip() for p in text.split(",") if p.strip()):
            category, _, value = part.partition("=")
            try:
                number = float(value)
            except ValueError:
                number = -1.0
            if not category.strip() or not 0 < number < 24 * 3650:
                raise ValueError(f"GRIDMAP_DEADLINES: {part!r} is not a deadline; expected category=hours, "
                                 "e.g. illegal_parking=4,flying_cable=24,*=72")
            if category.strip() == "*":
                default = number
            else:
                hours[category.strip()] = number
        return cls(hours=hours, default_hours=default)

    def due(self, reported_at: datetime, category: str, own: datetime | None = None) -> datetime:
        """When an incident of ``category`` reported at ``reported_at`` must be closed: its ``own``
        deadline where its file gave one (``mapping.NO_DEADLINE``: never late), else its category's."""
        if own is not None:
            return own
        return reported_at + timedelta(hours=self.hours.get(category, self.default_hours))

    def due_array(self, reported_at: np.ndarray, categories: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
        """:meth:`due` for columns of incidents (datetime64[us]; ``own`` NaT where none): the hours
        looked up once per category, not once per incident."""
        category = pd.Categorical(categories)
        allowed = np.array([self.hours.get(c, self.default_hours) for c in category.categories], dtype=float)
        hours = allowed[category.codes] if len(allowed) else np.zeros(len(category))
        due = np.asarray(reported_at, dtype="datetime64[us]") + (hours * 3.6e9).astype("timedelta64[us]")
        if own is None:
            return due
        own = np.asarray(own, dtype="datetime64[us]")
        return np.where(np.isnat(own), due, own)


def _choice(value: object, kind: type[Enum], key: str, problems: list[Message]) -> Any:
    text = str(value or "").strip()
    try:
        return kind(text)
    except ValueError:
        problems.append(message(N_("{key}={value!r} is not valid; expected one of {choices}"), key=key,
                                value=text, choices=", ".join(str(m.value) for m in kind)))
        return None


def _whole(value: object, key: str, problems: list[Message]) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isascii()
                                                                  and value.strip().isdigit())):
        problems.append(message(N_("{key}={value!r} is not valid; expected a whole number"), key=key, value=value))
        return None
    number = int(value)
    if not 0 <= number < 2**62:
        problems.append(message(N_("{key}={value!r} is not valid; expected a whole number"), key=key, value=value))
        return None
    return number
