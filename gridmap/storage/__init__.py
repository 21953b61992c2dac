"""Storage behind one interface (a repository, as in Cosmic Python).

The domain and the web layer talk only to :class:`Store`.  ``open_store(url)`` picks the
implementation from the database URL: ``sqlite:///…`` (the embedded default, WAL) today;
a PostGIS store implements the same methods and passes the same contract tests.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

import numpy as np
import pandas as pd

from ..boundaries import Layer
from ..errors import N_, InvalidInput, message
from ..incidents import IncidentDraft
from ..levels import Level


@dataclass(frozen=True)
class IncidentQuery:
    """Filters for listing incidents; None means "any"."""

    category: str | None = None
    status: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None   # exclusive
    unit: str | None = None            # a unit code of any level
    ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Stored:
    """What happened to one incident draft: ``created``, ``existing`` or ``conflict``."""

    id: int
    outcome: str


@dataclass(frozen=True)
class LayerMeta:
    level: Level
    version: int
    created_at: datetime
    author: str
    note: str
    unit_count: int


class Store(ABC):
    """Everything gridmap keeps: boundary layers with their versions, incidents, assignments."""

    @abstractmethod
    def layers(self) -> dict[Level, Layer]:
        """The current version of every level that has one."""

    @abstractmethod
    def versions(self) -> dict[Level, int]:
        """The current version number of every level that has one (cheap: no geometry)."""

    @abstractmethod
    def layer_meta(self) -> list[LayerMeta]:
        """One line per current layer: version, who, when, how many units."""

    @abstractmethod
    def save_layer(self, layer: Layer, *, author: str, note: str,
                   assignments: dict[Level, tuple[np.ndarray, np.ndarray]],
                   relinked: dict[Level, dict[str, str | None]] | None = None) -> int:
        """Store ``layer`` as its level's new current version, all or nothing, together with
        the unit of every stored incident (``(incident ids, codes)``) for its level and for each
        level below whose assignment it changed, and the new parent codes of a child level whose
        parents were derived spatially (``relinked``).  Returns the version number."""

    @abstractmethod
    def add_incidents(self, drafts: Sequence[IncidentDraft], units: dict[Level, np.ndarray]) -> list[Stored]:
        """Insert incidents with their units, all or nothing.  A draft whose external id is
        already stored (or came earlier in the batch) is not inserted again: it is ``existing``
        when it is the same report (category, position, time) and ``conflict`` when it is not."""

    @abstractmethod
    def incident_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, lon, lat) of every stored incident, for reassignment."""

    @abstractmethod
    def incidents(self, query: IncidentQuery = IncidentQuery()) -> pd.DataFrame:
        """Matching incidents: id, external_id, category, category_raw, lon, lat, reported_at,
        status, description, source, and one column per current level with the unit code."""

    @abstractmethod
    def count_incidents(self) -> int:
        """How many incidents are stored."""

    def is_empty(self) -> bool:
        return not self.versions() and self.count_incidents() == 0

    def close(self) -> None:
        """Release connections."""


def open_store(url: str) -> Store:
    """The store for a database URL."""
    if url.startswith("sqlite:"):
        from .sql import SqlStore
        return SqlStore(url)
    raise InvalidInput(message(N_("unsupported database URL {url!r}; expected sqlite:///path"),
                               url=url.split("@")[-1]))
