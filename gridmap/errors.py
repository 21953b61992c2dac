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


def message(template: str, **params: Any) -> Message:
    return Message(template, params)


class GridmapError(Exception):
    """Base class: a problem the user caused or can fix, with every detail collected."""

    def __init__(self, summary: Message | str, details: list[Message] | None = None) -> None:
        self.summary = summary if isinstance(summary, Message) else Message(summary)
        self.details = list(details or [])
        super().__init__(str(self.summary))

    def __str__(self) -> str:
        lines = [str(self.summary)] + [f"  - {d}" for d in self.details]
        return "\n".join(lines)


class InvalidInput(GridmapError):
    """The request or file is malformed or inconsistent; nothing was changed."""


class NotFound(GridmapError):
    """The thing asked for does not exist."""


class Conflict(GridmapError):
    """The request contradicts the stored state (e.g. a level that needs its parent first)."""


class TooLarge(GridmapError):
    """The upload is larger than the service accepts."""
