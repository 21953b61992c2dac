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
    def layer_meta(self) -> list[LayerMeta]:
        """One line per current layer: version, who, when, how many units."""

    @abstractmethod
    def save_layer(self, layer: Layer, *, author: str, note: str,
                   assignments: tuple[np.ndarray, np.ndarray]) -> int:
        """Store ``layer`` as the level's new current version together with the unit code of
        every stored incident under it (``(incident ids, codes)``), all or nothing; the version."""

    @abstractmethod
    def update_parents(self, level: Level, parents: dict[str, str | None]) -> None:
        """Set the parent codes of the current units of ``level``, derived spatially after the level
        above changed (the layer's parent source becomes "spatial")."""

    @abstractmethod
    def add_incidents(self, drafts: Sequence[IncidentDraft],
                      units: dict[Level, np.ndarray]) -> list[tuple[int, bool]]:
        """Insert incidents with their units, all or nothing.  Per draft: (id, created); a draft
        whose external id is already stored (or repeated earlier in the batch) is not inserted
        again and gets the stored id with created False."""

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
        return not self.layers() and self.count_incidents() == 0

    def close(self) -> None:
        """Release connections."""


def open_store(url: str) -> Store:
    """The store for a database URL."""
    if url.startswith("sqlite:"):
        from .sql import SqlStore
        return SqlStore(url)
    raise InvalidInput(message(N_("unsupported database URL {url!r}; expected sqlite:///path"),
                               url=url.split("@")[-1]))
