"""The domain's exceptions: what went wrong, said so a planner can act on it.

No HTTP here: the web edge maps each class to a status code.  A message is an
English template with named fields; :class:`Message` keeps the template and the
values apart so the edge can translate the template before filling it in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


def N_(template: str) -> str:
    """Mark a message template for translation extraction; returns it unchanged."""
    return template


@dataclass(frozen=True)
class Message:
    """A user-facing sentence: a translatable template plus the values it names."""

    template: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def render(self, translate: Callable[[str], str] = lambda s: s) -> str:
        params = {k: v.render(translate) if isinstance(v, Message) else v for k, v in self.params.items()}
        return translate(self.template).format(**params)

    def __str__(self) -> str:
        return self.render()

    def relabel(self, names: Mapping[str, str]) -> Message:
        """The message with every request option it names (a parameter called ``option``) called
        by ``names`` instead: the form's label on a page, ``--code-field`` on the command line."""
        params = {k: v.relabel(names) if isinstance(v, Message) else
                  names.get(v, v) if k == OPTION and isinstance(v, str) else v for k, v in self.params.items()}
        return Message(self.template, params)


#: A message parameter of this name holds a request option's key (``code_field``), which each edge
#: shows the way its users know it (see :meth:`Message.relabel`).
OPTION = "option"


def message(template: str, **params: Any) -> Message:
    return Message(template, params)


def message_record(msg: Message) -> dict[str, Any]:
    """A message as JSON-safe data (nested messages too), to be stored and rendered later."""
    return {"template": msg.template,
            "params": {k: {"message": message_record(v)} if isinstance(v, Message) else v
                       for k, v in msg.params.items()}}


def message_from_record(record: Mapping[str, Any]) -> Message:
    params = {k: message_from_record(v["message"]) if isinstance(v, dict) and "message" in v else v
              for k, v in record["params"].items()}
    return Message(record["template"], params)


class GridmapError(Exception):
    """Base class: a problem the user caused or can fix, with every detail collected."""

    def __init__(self, summary: Message | str, details: list[Message] | None = None, *,
                 report: Any = None, preview: Any = None) -> None:
        self.summary = summary if isinstance(summary, Message) else Message(summary)
        self.details = list(details or [])
        self.report = report          # a validation Report when the refusal comes from one
        self.preview = preview        # and what the refused save would have been, to show with it
        super().__init__(str(self.summary))

    def __str__(self) -> str:
        lines = [str(self.summary)] + [f"  - {d}" for d in self.details]
        return "\n".join(lines)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled whole (an import worker's refusal reaches the storing process with every detail);
        # Exception's own pickling would keep only the summary's text
        return type(self), (self.summary, self.details), {"report": self.report, "preview": self.preview}


class InvalidInput(GridmapError):
    """The request or file is malformed or inconsistent; nothing was changed."""


class NotFound(GridmapError):
    """The thing asked for does not exist."""


class Conflict(GridmapError):
    """The request contradicts the stored state (e.g. a level that needs its parent first)."""


class PreconditionFailed(GridmapError):
    """The version a request said it was based on (If-Match) is no longer the current one."""
