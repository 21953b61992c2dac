"""The lifecycle's rules: every allowed transition, every refused one, and what a step must carry."""
from __future__ import annotations

from datetime import datetime

import pytest

from gridmap.errors import Conflict, InvalidInput
from gridmap.incidents import Status
from gridmap.lifecycle import TRANSITIONS, Action, Deadlines, Resolution, Step, next_state

R, D, P, C = Status.REPORTED, Status.DISPATCHED, Status.IN_PROGRESS, Status.CLOSED
RATED, REJ, DUP = Status.RATED, Status.REJECTED, Status.DUPLICATE
#: The table the module's docstring states, written out by hand.
ALLOWED = {
    (R, "dispatch"): D, (D, "start"): P, (D, "close"): C, (P, "close"): C, (C, "rate"): RATED,
    (R, "reject"): REJ, (D, "reject"): REJ, (R, "duplicate"): DUP, (D, "duplicate"): DUP, (P, "duplicate"): DUP,
    (C, "reopen"): D, (RATED, "reopen"): D, (REJ, "reopen"): D, (DUP, "reopen"): D,
    (D, "escalate"): D, (P, "escalate"): P,
}


def step(action: str) -> Step:
    return Step(action=Action(action), actor="张三", resolution=Resolution.FIXED, rating=5, duplicate_of=99)


def test_the_transition_table_is_the_documented_one():
    assert {(state, action.value): after for (state, action), after in TRANSITIONS.items()} == ALLOWED


@pytest.mark.parametrize(("state", "action"), sorted(ALLOWED, key=str))
def test_every_allowed_transition(state, action):
    assert next_state(7, state, step(action)) is ALLOWED[state, action]


@pytest.mark.parametrize("state", list(Status))
def test_every_other_action_is_refused_naming_what_is_allowed(state):
    allowed = [a for s, a in ALLOWED if s is state]
    for action in (a for a in Action if a.value not in allowed):
        with pytest.raises(Conflict) as refused:
            next_state(7, state, step(action.value))
        assert str(refused.value.summary) == (
            f"incident 7 is {state.value}: {action.value} is not allowed; allowed: {', '.join(allowed)}")


def test_a_duplicate_of_itself_is_refused():
    with pytest.raises(Conflict, match="cannot be a duplicate of itself"):
        next_state(99, R, step("duplicate"))


def test_a_step_names_every_missing_part_at_once():
    with pytest.raises(InvalidInput) as refused:
        Step.parse({"action": "close", "actor": " "})
    assert [str(d) for d in refused.value.details] == [
        "actor is missing; expected the name of who takes this step",
        "a close needs a resolution: one of fixed, not_fixed, not_ours"]
    with pytest.raises(InvalidInput) as refused:
        Step.parse({"action": "rate", "actor": "a", "rating": 6})
    assert [str(d) for d in refused.value.details] == ["a rating needs rating=1 to 5 (5: very satisfied)"]
    with pytest.raises(InvalidInput) as refused:
        Step.parse({"action": "fly", "actor": "a", "duplicate_of": "x", "resolution": "done"})
    assert [str(d) for d in refused.value.details] == [
        "action='fly' is not valid; expected one of dispatch, start, close, rate, reject, duplicate, reopen, escalate",
        "resolution='done' is not valid; expected one of fixed, not_fixed, not_ours",
        "duplicate_of='x' is not valid; expected a whole number"]
    assert Step.parse({"action": "duplicate", "actor": "李四", "duplicate_of": "12", "note": "同一处"}) == Step(
        action=Action.DUPLICATE, actor="李四", note="同一处", duplicate_of=12)


def test_deadlines_per_category_with_a_default():
    deadlines = Deadlines.parse("illegal_parking=4, flying_cable=24,*=48")
    reported = datetime(2026, 3, 5, 8, 0)
    assert deadlines.due(reported, "illegal_parking") == datetime(2026, 3, 5, 12, 0)
    assert deadlines.due(reported, "flying_cable") == datetime(2026, 3, 6, 8, 0)
    assert deadlines.due(reported, "clutter") == datetime(2026, 3, 7, 8, 0)
    assert Deadlines.parse("").due(reported, "clutter") == datetime(2026, 3, 8, 8, 0)      # three days
    with pytest.raises(ValueError, match="'parking=soon' is not a deadline"):
        Deadlines.parse("parking=soon")
