"""The shared nouns of boundary work: a :class:`Layer` of units, and the text helpers that read
codes, names and field names the same way everywhere.

A leaf module: it imports no other gridmap module but the level and problem types, so the
reader, the checks, the formats and the store can all use it without import circles.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

import geopandas as gpd
import pandas as pd

from .levels import Level
from .problems import Problem

if TYPE_CHECKING:
    from .cleaning import Cleaning


@dataclass
class Layer:
    """The units of one level, plus how their parents were found ("field", "spatial" or None),
    the problems found while reading it and what coverage cleaning changed, if it was cleaned.

    ``units`` is a GeoDataFrame in EPSG:4326 with the columns ``code, name, parent_code,
    area_m2, properties, geometry``; its index is each unit's feature index in the file it came
    from, so that every problem found later can name the feature a planner will look for.
    """

    level: Level
    units: gpd.GeoDataFrame
    parent_source: str | None = None
    version: int | None = None
    problems: list[Problem] = field(default_factory=list)
    cleaning: Cleaning | None = None

    @property
    def codes(self) -> list[str]:
        return self.units["code"].tolist()


def texts(values: Iterable[str | None], index: pd.Index | None = None) -> pd.Series:
    """A column of text that keeps None as None (pandas 3 would turn it into NaN)."""
    return pd.Series(list(values), dtype=object, index=index)


def clean_text(value: Any) -> str | None:
    """A value as text: ``7`` and ``7.0`` both become ``"7"``; blanks become None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def nul_path(value: Any, path: str = "") -> str | None:
    """Where a decoded JSON value (named ``path``) holds a NUL character in a key or a text
    (``body.features[3].name``), or None: no good file or request has one, PostgreSQL cannot store
    one, and GDAL cuts text at one."""
    waiting: list[tuple[str, Any]] = [(path, value)]
    while waiting:
        path, value = waiting.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    return f"{path}.{key!r}"
                waiting.append((f"{path}.{key}", item))
        elif isinstance(value, list):
            waiting.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return None


def find_field(columns: Iterable[str], candidates: Iterable[str]) -> str | None:
    """The first column whose name matches a candidate, ignoring case and surrounding space; failing
    that, ignoring full-width forms and a unit or note in brackets after it too (``经度（°）``,
    ``Latitude (WGS84)``, ``编码【网格】``)."""
    columns, candidates = list(columns), [name.lower() for name in candidates]
    for key in (lambda c: str(c).strip().lower(), _bare_name):
        by_key: dict[str, Any] = {}
        for column in columns:
            by_key.setdefault(key(column), column)
        found = next((by_key[name] for name in candidates if name in by_key), None)
        if found is not None:
            return found
    return None


def _bare_name(column: Any) -> str:
    return _ANNOTATION.sub("", unicodedata.normalize("NFKC", str(column))).strip().lower()


_ANNOTATION = re.compile(r"\s*[(\[【〔][^()\[\]【】〔〕]*[)\]】〕]\s*$")
