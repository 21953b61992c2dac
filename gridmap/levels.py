"""The boundary hierarchy: street → community → grid → micro-grid."""
from __future__ import annotations

from enum import Enum
from typing import Iterable

from .errors import N_, InvalidInput, Message, message


class Level(str, Enum):
    """A level of the hierarchy, ordered from the largest unit to the smallest."""

    STREET = "street"
    COMMUNITY = "community"
    GRID = "grid"
    MICRO_GRID = "micro_grid"

    @property
    def depth(self) -> int:
        return ORDER.index(self)

    @property
    def label_zh(self) -> str:
        return _LABELS[self][0]

    @property
    def label_en(self) -> str:
        return _LABELS[self][1]

    @property
    def noun(self) -> Message:
        """The level's name inside a message, translated with it ("Micro-grid" / 微网格)."""
        return message(self.label_en)

    @classmethod
    def parse(cls, value: str) -> "Level":
        try:
            return cls(str(value).strip().lower().replace("-", "_"))
        except ValueError:
            raise InvalidInput(message(
                N_("unknown level {value!r}; expected one of {expected}"),
                value=value, expected=", ".join(lv.value for lv in ORDER),
            )) from None


ORDER: tuple[Level, ...] = (Level.STREET, Level.COMMUNITY, Level.GRID, Level.MICRO_GRID)

_LABELS = {
    Level.STREET: ("街道", N_("Street")),
    Level.COMMUNITY: ("社区", N_("Community")),
    Level.GRID: ("网格", N_("Grid")),
    Level.MICRO_GRID: ("微网格", N_("Micro-grid")),
}


def deepest(levels: Iterable[Level]) -> Level | None:
    """The smallest of ``levels`` (micro-grid before grid), None when there is none."""
    return max(levels, key=lambda level: level.depth, default=None)
