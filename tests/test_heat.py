"""The heat map's in-memory table: the store's filter rules, and following the store as it grows."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from gridmap.heat import IncidentTable, TableCache
from gridmap.incidents import IncidentColumns, Status
from gridmap.storage import COUNT_BY, IncidentQuery, open_store

from .test_storage import draft

QUERIES = [IncidentQuery(), IncidentQuery(categories=("litter",)), IncidentQuery(statuses=("closed",)),
           IncidentQuery(date_from=datetime(2026, 2, 1)), IncidentQuery(date_to=datetime(2026, 2, 1)),
           IncidentQuery(date_from=datetime(2026, 2, 1), date_to=datetime(2026, 2, 2, 12)),
           IncidentQuery(bbox=(0.002, 0.002, 0.015, 0.015)),
           IncidentQuery(bbox=(0.0021, 0, 1, 1), categories=("litter",)),
           IncidentQuery(exclude_points=((0.004, 0.003), (-0.5, 0.005))), IncidentQuery(exclude_points=((0.004, 0.0),)),
           IncidentQuery(categories=("clutter", "litter"), statuses=("closed", "dispatched")),
           IncidentQuery(sources=("网格员",)), IncidentQuery(sources=("网格员", "12345"), categories=("litter",)),
           IncidentQuery(sources=("nobody",))]


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 'heat.db'}" if request.param == "sqlite" else "memory://")
    yield s
    s.close()


def add(store, drafts) -> None:
    with store.writing() as tx:
        tx.add_incidents(IncidentColumns.of(drafts), {})


def test_the_table_filters_exactly_as_the_store_does(store):
    add(store, [draft(0.002, 0.002, category="litter", reported_at=datetime(2026, 1, 31, 23, 59), source="12345"),
                draft(0.004, 0.003, category="clutter", reported_at=datetime(2026, 2, 1), status=Status.CLOSED,
                      source="网格员"),
                draft(0.015, 0.015, category="litter", reported_at=datetime(2026, 2, 2, 12), source="网格员"),
                draft(-0.5, 0.005, category="litter", reported_at=datetime(2026, 2, 2, 11, 59),
                      status=Status.DISPATCHED)])
    table = TableCache(store).table()
    assert [table.ids[table.matching(q)].tolist() for q in QUERIES] == [
        store.incidents(q)["id"].tolist() for q in QUERIES]
    assert [table.ids[table.matching(q)].tolist() for q in QUERIES] == [
        [1, 2, 3, 4], [1, 3, 4], [2], [2, 3, 4], [1], [2, 4], [1, 2, 3], [3], [1, 3], [1, 2, 3, 4], [2, 4], [2, 3],
        [1, 3], []]
    for q in QUERIES:
        mine, theirs = table.heat(q, 0.01), store.heat(q, cell_deg=0.01)
        assert sorted(zip(mine.count.tolist(), mine.lon.tolist(), mine.lat.tolist())) == sorted(
            zip(theirs.count.tolist(), theirs.lon.tolist(), theirs.lat.tolist()))
    for by in COUNT_BY:
        assert [table.counts(q, by) for q in QUERIES] == [store.counts(q, by) for q in QUERIES], by
    assert table.counts(IncidentQuery(), "weekday_hour") == {"6-23": 1, "7-00": 1, "1-12": 1, "1-11": 1}
    assert not table.answers(IncidentQuery(unit="W")) and table.answers(IncidentQuery(categories=("litter",)))
    assert TableCache(store).heat(IncidentQuery(unit="W"), 0.01) is None        # the store answers that one


def test_the_cache_reads_only_new_rows_until_the_store_holds_something_else(store, monkeypatch):
    cache = TableCache(store)
    assert len(cache.table().ids) == 0
    add(store, [draft(0.001, 0.001), draft(0.002, 0.002)])
    asked: list[int] = []
    reading = store.incident_table

    def counted(after: int = 0, limit: int | None = None) -> dict:
        asked.append(after)
        return reading(after, limit)
    monkeypatch.setattr(store, "incident_table", counted)
    assert cache.table().ids.tolist() == [1, 2] and asked == [0]
    assert cache.table() is cache.table() and asked == [0]        # nothing committed since: no read
    add(store, [draft(0.003, 0.003)])
    table = cache.table()
    assert (table.ids.tolist(), table.lon.tolist(), asked) == ([1, 2, 3], [0.001, 0.002, 0.003], [0, 2])
    monkeypatch.setattr(store, "count_incidents", lambda: 2)       # as if a row had gone: read again whole
    add(store, [draft(0.004, 0.004)])
    assert cache.table().ids.tolist() == [1, 2, 3, 4] and asked[-2:] == [3, 0]


def test_a_table_is_read_a_chunk_at_a_time(store, monkeypatch):
    monkeypatch.setattr("gridmap.heat.READ_CHUNK", 2)
    add(store, [draft(0.001 * k, 0.001, source=source) for k, source in enumerate(["a", "", "b", "a", "c"], 1)])
    table = TableCache(store).table()
    assert table.ids.tolist() == [1, 2, 3, 4, 5]
    # each chunk's new sources join the vocabulary; the earlier ones keep their positions
    assert table.sources == ("a", "", "b", "c") and table.source.tolist() == [0, 1, 2, 0, 3]
    assert table.ids[table.matching(IncidentQuery(sources=("a", "c")))].tolist() == [1, 4, 5]
    assert table.reported_at.dtype == np.dtype("datetime64[us]")
    assert IncidentTable.of(store.incident_table(after=3, limit=1)).ids.tolist() == [4]


def test_heat_answers_are_kept_while_the_table_stays_the_same(store, monkeypatch):
    monkeypatch.setattr("gridmap.heat.HEAT_ANSWERS", 2)
    add(store, [draft(0.001, 0.001), draft(0.0052, 0.0051, category="clutter")])
    cache = TableCache(store)
    litter, everything = IncidentQuery(categories=("litter",)), IncidentQuery()
    first = cache.heat(litter, 0.01)
    assert cache.heat(litter, 0.01) is first and first.count.tolist() == [1]
    assert cache.heat(everything, 0.01).count.tolist() == [2]
    assert cache.heat(everything, 0.001).count.tolist() == [1, 1]
    assert cache.heat(litter, 0.01) is not first                  # two kept: the oldest went
    add(store, [draft(0.0015, 0.0015)])
    assert cache.heat(everything, 0.01).count.tolist() == [3]     # a new incident: counted again
    assert cache.heat(litter, 0.01).count.tolist() == [2]


def test_the_table_follows_status_changes_without_reading_every_incident_again(store, monkeypatch):
    from gridmap.storage import IncidentEvent

    add(store, [draft(0.001, 0.001), draft(0.002, 0.002), draft(0.003, 0.003)])
    cache = TableCache(store)
    closed = IncidentQuery(statuses=("closed",))
    assert cache.table().ids[cache.table().matching(closed)].tolist() == []
    asked: list[int] = []
    reading = store.incident_table
    monkeypatch.setattr(store, "incident_table",
                        lambda after=0, limit=None: asked.append(after) or reading(after, limit))
    at = datetime(2026, 3, 6)
    with store.writing() as tx:
        tx.add_event(IncidentEvent(2, at, "王", "dispatch", "reported", "dispatched"))
        tx.add_event(IncidentEvent(2, at, "王", "close", "dispatched", "closed", resolution="fixed"))
        tx.add_event(IncidentEvent(3, at, "王", "reject", "reported", "rejected"))
    table = cache.table()
    assert table.ids[table.matching(closed)].tolist() == [2]
    assert table.ids[table.matching(IncidentQuery(statuses=("rejected", "reported")))].tolist() == [1, 3]
    assert asked == [3]                     # only the rows above the last id: none
    assert table.counts(IncidentQuery(), "category") == {"litter": 3}
    assert TableCache(store).table().status.tolist() == table.status.tolist()     # as a fresh read has them
