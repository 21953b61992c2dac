"""The review page of a version or a refused upload, and the JSON endpoints it pages its lists from.

Fixtures are the 2×2 block of tests/conftest.py (grids W, E; micro-grids W-S, W-N, E-S, E-N).
``BUMPED``: micro-grid E-S reaches 0.00001° (1.1 m) west into W-S over 0.001° (110.6 m) of their
shared line, so W-S and E-S overlap by that bump, and E-S sticks out of its grid E by it; the bump's
area, 123.1 m², is worked out here with pyproj's geodesic area (not gridmap's projection).
"""
from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from typing import Any, Iterator

import geopandas
import pytest
import shapely
from pyproj import Geod
from shapely import Polygon, box

from gridmap.changes import LayerOptions, SaveMode
from gridmap.errors import InvalidInput
from gridmap.levels import Level
from gridmap.maps import review_shape
from gridmap.web import review

from .conftest import CELLS, SHARED, build_app, feature_collection, grid_file, micro_file

GEOD = Geod(ellps="WGS84")
BUMP = box(0.00999, 0.004, 0.01, 0.005)
E_S_BUMPED = Polygon([(0.01, 0), (0.02, 0), (0.02, 0.01), (0.01, 0.01), (0.01, 0.005), (0.00999, 0.005),
                      (0.00999, 0.004), (0.01, 0.004)])            # counter-clockwise, as RFC 7946 wants
BOSTON = SHARED / "data" / "boston-2015"
PAGE_LIMIT_BYTES = 300_000


def geodesic_m2(geometry: Any) -> float:
    return abs(GEOD.geometry_area_perimeter(geometry)[0])


def micro(cells: dict[str, Any], *, unnamed: tuple[str, ...] = ()) -> bytes:
    return feature_collection([({"code": code, **({} if code in unnamed else {"name": f"微网格{code}"})}, shape)
                               for code, shape in cells.items()])


BUMPED = {**CELLS, "E-S": E_S_BUMPED}


def test_review_shapes_are_polylines_as_google_documents_them():
    # Google's example (precision 1e5): (38.5, -120.2), (40.7, -120.95), (43.252, -126.453) encode to
    # "_p~iF~ps|U_ulLnnqC_mqNvxq`@"; the same integers at our precision (1e6) are these coordinates / 10
    line = Polygon([(-12.02, 3.85), (-12.095, 4.07), (-12.6453, 4.3252)])
    ring = review_shape(line)[0][0]
    assert ring.startswith("_p~iF~ps|U_ulLnnqC_mqNvxq`@") and len(ring) > 27     # then the closing point
    holed = Polygon(box(-71.1, 42.3, -71.0, 42.4).exterior, [box(-71.06, 42.34, -71.04, 42.36).exterior.coords])
    shape = review_shape(shapely.MultiPolygon([holed, box(0, 0, 1e-6, 1e-6)]))
    assert [len(polygon) for polygon in shape] == [2, 1]                        # exterior + hole; exterior
    assert review_shape(shapely.LineString([(0, 0), (1, 1)])) is None


# -- a small HTML reader (the standard library's parser; no third-party one is installed) ------------

class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def words(self) -> str:
        return " ".join(self.text.split())

    def all(self, tag: str | None = None, **attrs: str | bool) -> list[Node]:
        """Descendants with ``tag`` and attributes (``True``: present; ``class_`` matches one class)."""
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and all(child._has(k, v) for k, v in attrs.items()):
                    found.append(child)
                found += child.all(tag, **attrs)
        return found

    def one(self, tag: str | None = None, **attrs: str | bool) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} {attrs}>"
        return found[0]

    def _has(self, key: str, value: str | bool) -> bool:
        key = key.rstrip("_").replace("_", "-")
        if value is True:
            return key in self.attrs
        if key == "class":
            return value in (self.attrs.get("class") or "").split()
        return self.attrs.get(key) == value


class _Reader(HTMLParser):
    VOID = {"meta", "link", "input", "br", "img", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.node = Node("#root", {}, None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.node)
        self.node.children.append(node)
        if tag not in self.VOID:
            self.node = node

    def handle_endtag(self, tag: str) -> None:
        node = self.node
        while node.parent is not None and node.tag != tag:
            node = node.parent
        if node.parent is not None:
            self.node = node.parent

    def handle_data(self, data: str) -> None:
        self.node.children.append(data)


def read(response: Any) -> Node:
    reader = _Reader()
    reader.feed(response.get_data(as_text=True))
    return reader.root


def page_data(root: Node) -> dict[str, Any]:
    return json.loads(root.one("script", id="review-data").text)


def groups(root: Node) -> list[tuple[str, str, int, bool]]:
    """(severity, kind, count in the summary, open) of each group, in page order."""
    return [(d.attrs["data-severity"], d.attrs["data-kind"], int(d.one("span", class_="count").text),
             "open" in d.attrs) for d in root.one(id="problems").all("details")]


def number(text: str) -> float:
    return float(text.replace(",", "").replace("+", ""))


# -- helpers and fixtures ----------------------------------------------------------------------------

def upload(client: Any, level: str, data: bytes, filename: str = "f.geojson", **fields: str) -> Any:
    return client.post("/upload", data={"level": level, "file": (io.BytesIO(data), filename), **fields},
                       content_type="multipart/form-data")


def draft(client: Any, level: str, data: bytes, **fields: str) -> str:
    """Upload through the form; the URL of the draft's review page it redirects to."""
    response = upload(client, level, data, **fields)
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return response.headers["Location"]


def commit(client: Any, url: str, author: str = "ann") -> None:
    response = client.post(url + "/commit", data={"author": author})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]


@pytest.fixture
def grids(client: Any) -> Any:
    """The grids W and E committed as grid version 1; no micro-grid yet."""
    commit(client, draft(client, "grid", grid_file()))
    return client


@pytest.fixture
def block(grids: Any) -> Any:
    """Grids v1 and the four micro-grids v1, committed."""
    commit(grids, draft(grids, "micro_grid", micro_file()))
    return grids


# -- the report ----------------------------------------------------------------------------------------

def test_a_refused_upload_lists_errors_first_grouped_by_kind_and_stores_nothing(grids, app):
    response = upload(grids, "micro_grid", micro(BUMPED, unnamed=("W-N", "E-N")), note="bump")
    root = read(response)

    assert response.status_code == 400
    # errors first though fewer; then the bigger warning group; errors open, warnings closed
    assert groups(root) == [("error", "overlap", 1, True), ("warning", "missing_name", 2, False),
                            ("warning", "outside_parent", 1, False)]
    titles = [s.one("span", class_="title").text for s in root.one(id="problems").all("summary")]
    assert titles == ["Overlaps", "Missing name", "Outside the parent unit"]
    rows = root.one(id="problems").all("tr", data_kind=True)
    assert [(r.attrs["class"], r.attrs["data-kind"], r.all("td")[1].words()) for r in rows] == [
        ("error", "overlap", "#0 W-S"), ("warning", "missing_name", "#1 W-N"),
        ("warning", "missing_name", "#3 E-N"), ("warning", "outside_parent", "#2 E-S")]
    overlap = rows[0].all("td")
    assert overlap[0].text.startswith("units W-S and E-S overlap by 123.1 m²")
    assert number(overlap[2].text) == pytest.approx(geodesic_m2(BUMP), abs=0.05)
    assert root.one(id="report").one("p").words() == \
        "1 error(s): nothing can be committed until they are fixed. 3 warning(s)."
    # nothing stored; the way back: the form with the file's options, and the same with cleaning
    assert app.extensions["gridmap"].store.versions() == {Level.GRID: 1}
    form_url = "/upload?level=micro_grid&note=bump"
    assert root.one("a", id="back-to-form").attrs["href"] == form_url
    assert root.one("a", id="clean-again").attrs["href"] == form_url + "&clean=1"
    assert root.all(id="commit") == [] and root.all(id="clean-form") == []
    data = page_data(root)
    assert [u["code"] for u in data["after"]["units"]] == ["W-S", "W-N", "E-S", "E-N"]   # embedded outlines
    assert data["before"] is None and data["problemsUrl"] is None


def test_names_reach_the_page_as_text_only(grids):
    evil = '</script><img src=x onerror="alert(1)">'
    data = feature_collection([({"code": code, "name": evil}, shape) for code, shape in BUMPED.items()])
    response = upload(grids, "micro_grid", data)
    html = response.get_data(as_text=True)

    assert response.status_code == 400 and "<img" not in html
    root = read(response)
    assert {u["name"] for u in page_data(root)["after"]["units"]} == {evil}       # JSON in the page, escaped
    assert [tr.all("td")[2].text for tr in root.one(id="units-diff").all("tr", data_change="added")] == [evil] * 4


# 25 strips side by side, the first two named: a first upload of the grid level (no level above)
STRIPS = {f"C{i:02d}": box(0.0004 * i, 0, 0.0004 * (i + 1), 0.01) for i in range(25)}
UNNAMED = tuple(f"C{i:02d}" for i in range(2, 25))


def test_a_refused_upload_with_a_long_group_shows_twenty_rows_and_carries_the_rest(client):
    cells = {**STRIPS, "C24": box(0.0004 * 23.5, 0, 0.0004 * 25, 0.01)}                   # overlaps C23
    root = read(upload(client, "grid", micro(cells, unnamed=UNNAMED)))

    assert groups(root) == [("error", "overlap", 1, True), ("warning", "missing_name", 23, False)]
    missing = root.one("details", data_kind="missing_name")
    assert [r.all("td")[1].words() for r in missing.all("tr", data_kind=True)] == \
        [f"#{i} C{i:02d}" for i in range(2, 22)]
    assert missing.one("button", class_="more").text == "Show more (3 not shown)"
    rest = page_data(root)["groups"]["warning-missing_name"]["rest"]
    assert [(r["i"], r["feature"], r["code"]) for r in rest] == [(20, 22, "C22"), (21, 23, "C23"), (22, 24, "C24")]
    assert rest[0]["message"] == 'feature 22 (code "C22") has no name; the code is shown instead'


def test_a_refused_upload_carries_at_most_so_many_rows_and_outlines_and_says_so(client, monkeypatch):
    """At district scale a refused page cannot carry every row and outline (10,000 micro-grids:
    2.8 MB): it carries the first EMBED_MAX rows of a list and, beyond OUTLINES_MAX units, only the
    units its listed problems name.  Here the limits are made tiny: 22 rows, 24 units."""
    monkeypatch.setattr(review, "EMBED_MAX", 22)
    monkeypatch.setattr(review, "OUTLINES_MAX", 24)
    cells = {**STRIPS, "C24": box(0.0004 * 23.5, 0, 0.0004 * 25, 0.01)}                   # overlaps C23
    root = read(upload(client, "grid", micro(cells, unnamed=UNNAMED)))

    missing = root.one("details", data_kind="missing_name")
    assert missing.one("span", class_="count").text == "23"                     # the whole count, still
    assert missing.one("button", class_="more").text == "Show more (2 not shown)"
    assert missing.one("tr", class_="unlisted").words() == (
        "1 more are not listed: this upload was not stored. Fix the errors and save it as a draft to see them all.")
    data = page_data(root)
    assert [r["code"] for r in data["groups"]["warning-missing_name"]["rest"]] == ["C22", "C23"]
    assert data["groups"]["warning-missing_name"]["total"] == 22                 # what the script can list
    # the units named by the listed problems: C23 and C24 overlap, C02…C23 have no name (C24's is unlisted)
    assert [u["code"] for u in data["after"]["units"]] == [f"C{i:02d}" for i in range(2, 25)]
    added = root.one("tbody", data_part="added")
    assert added.one("tr", class_="unlisted").words().startswith("3 more are not listed")


def test_a_draft_page_shows_the_report_it_was_saved_with_not_one_recomputed(block, app):
    url = draft(block, "micro_grid", micro(BUMPED), tolerance_m2="150", author="bo")
    root = read(block.get(url))

    assert root.one(id="report").one("p").words() == "No errors. 0 warning(s)."
    assert root.all(id="problems") == []
    assert "disabled" not in root.one("button", id="commit").attrs
    options = {tr.one("th").text: tr.one("td").text for tr in root.one(id="options").all("tr")}
    assert options == {"File": "f.geojson", "Report gaps and overlaps larger than (m²)": "150"}
    # checked again at the default tolerance (1 m²), the same file has the overlap error:
    with pytest.raises(InvalidInput):
        app.extensions["gridmap"].save_layer(Level.MICRO_GRID, micro(BUMPED), LayerOptions(), mode=SaveMode.DRAFT)
    commit(block, url, author="bo")
    history = read(block.get("/layers/micro_grid/history"))
    row = history.one("tr", data_version="2")
    assert (row.attrs["data-status"], row.attrs.get("class")) == ("committed", "current")


def test_stored_lists_are_paged_from_the_api(client):
    grids, cells = client, STRIPS
    url = draft(grids, "grid", micro(cells, unnamed=UNNAMED))
    root = read(grids.get(url))
    data = page_data(root)

    assert groups(root) == [("warning", "missing_name", 23, False)]
    assert len(root.one("details", data_kind="missing_name").all("tr", data_kind=True)) == 20
    assert data["groups"]["warning-missing_name"]["rest"] is None                     # not in the page
    assert data["problemsUrl"] == "/api/layers/grid/versions/1/problems"
    assert data["after"] == {"url": "/api/outlines/grid?version=1"}
    outlines = grids.get(data["after"]["url"]).get_json()
    assert (outlines["version"], outlines["code"]) == (1, [f"C{i:02d}" for i in range(25)])
    rest = grids.get(data["problemsUrl"] + "?kind=missing_name&severity=warning&offset=20").get_json()
    assert (rest["total"], rest["offset"], rest["limit"]) == (23, 20, 20)
    assert [(p["i"], p["code"]) for p in rest["problems"]] == [(20, "C22"), (21, "C23"), (22, "C24")]
    assert rest["problems"][0]["message"] == 'feature 22 (code "C22") has no name; the code is shown instead'
    first = grids.get(data["problemsUrl"] + "?limit=2").get_json()
    assert [(p["i"], p["code"]) for p in first["problems"]] == [(0, "C02"), (1, "C03")] and first["total"] == 23
    assert grids.get(data["problemsUrl"] + "?kind=missing_name&severity=error").get_json()["total"] == 0

    units = root.one(id="units-diff")
    assert [r.all("td")[1].text for r in units.all("tr", data_change="added")] == [f"C{i:02d}" for i in range(20)]
    assert units.one("button", class_="more").text == "Show more (5 not shown)"
    added = grids.get(data["diffUrl"] + "?part=added&offset=20&limit=50").get_json()
    assert [r["code"] for r in added["rows"]] == ["C20", "C21", "C22", "C23", "C24"] and added["total"] == 25
    assert added["rows"][0]["area_m2"] == pytest.approx(geodesic_m2(cells["C20"]), abs=0.05)

    for query, status, error in [
            ("/problems?limit=1001", 400, "limit: '1001' is not valid; expected a whole number from 0 to 1000"),
            ("/problems?severity=fatal", 400, "severity: 'fatal' is not known; expected one of error, warning"),
            ("/diff?part=units", 400,
             "part: 'units' is not known; expected one of added, removed, renamed, reshaped, moves")]:
        answer = grids.get("/api/layers/grid/versions/1" + query)
        assert (answer.status_code, answer.get_json()["error"]) == (status, error)
    missing = grids.get("/api/layers/grid/versions/9/problems")
    assert missing.status_code == 404 and missing.is_json


# -- tense, staleness, members --------------------------------------------------------------------------

# E-S is removed and W-S takes its land: the incident in E-S moves to W-S; (0.03, 0.03) is outside.
MERGED = {"W-S": box(0, 0, 0.02, 0.01), "W-N": CELLS["W-N"], "E-N": CELLS["E-N"]}
INCIDENTS = [{"category": "litter", "lon": lon, "lat": lat}
             for lon, lat in [(0.005, 0.005), (0.005, 0.015), (0.015, 0.005), (0.015, 0.015), (0.03, 0.03)]]


def test_a_draft_speaks_in_the_conditional_and_the_committed_version_in_the_past(block, app):
    assert block.post("/api/incidents", json=INCIDENTS).status_code == 201
    url = draft(block, "micro_grid", micro(MERGED))
    root = read(block.get(url))
    assert root.one(id="moved-count").text == "1 incident(s) would move to another unit."
    assert root.one(id="assigned-count").text == "4 of 5 incidents would be assigned to a unit of this version."
    assert root.one(id="diff").one("h3").text == "Incidents that would move"
    move = root.one(id="moves").one("tr", data_from="E-S", data_to="W-S")
    assert move.one("td", class_="count").text == "1"

    commit(block, url)
    root = read(block.get(url))
    assert root.one(id="status").text == "committed"
    assert root.one(id="moved-count").text == "1 incident(s) moved to another unit."
    assert root.one(id="assigned-count").text == "4 of 5 incidents were assigned to a unit of this version."
    assert root.one(id="diff").one("h3").text == "Incidents that moved"
    row = read(block.get("/layers/micro_grid/history")).one("tr", data_version="2")
    assert (row.one("td", class_="assigned").text, row.one("td", class_="moved").text) == ("4", "1")
    # times in the deployment's zone, as the API (which writes the offset) and the history show them
    meta = block.get("/api/layers/micro_grid/versions/2").get_json()
    assert root.one(id="saved").text.endswith(meta["created_at"][:16].replace("T", " "))
    assert root.one(id="committed").text == f"Committed by ann at {meta['committed_at'][:16].replace('T', ' ')}"
    assert row.one("td", class_="saved").text == meta["created_at"][:16].replace("T", " ")


def test_a_draft_whose_base_was_replaced_cannot_be_committed(block, app):
    stale = draft(block, "micro_grid", micro(MERGED))                            # v2, based on v1
    commit(block, draft(block, "micro_grid", micro(BUMPED), tolerance_m2="150"))  # v3 committed
    root = read(block.get(stale))

    assert "disabled" in root.one("button", id="commit").attrs
    assert root.one("p", class_="stale").text == ("Micro-grid version 3 was committed since this draft was saved, "
                                                  "so it cannot be committed; restore it or edit again.")
    assert root.one("form", id="restore-form").attrs["action"] == "/layers/micro_grid/versions/2/restore"
    assert block.post(stale + "/commit", data={"author": "ann"}).status_code == 409
    assert app.extensions["gridmap"].store.versions()[Level.MICRO_GRID] == 3


def test_versions_saved_in_one_change_are_listed_and_committed_together(block, app):
    url = draft(block, "micro_grid", micro(MERGED), derive_parent="1")
    assert url == "/layers/micro_grid/versions/2"
    root = read(block.get(url))

    members = root.one(id="members").all("a")
    assert [(a.attrs["href"], a.text) for a in members] == [("/layers/grid/versions/2", "Grid · version 2")]
    assert root.one("button", id="commit").text == "Commit all 2 versions of this change"
    grid = read(block.get("/layers/grid/versions/2"))
    assert [a.attrs["href"] for a in grid.one(id="members").all("a")] == ["/layers/micro_grid/versions/2"]
    commit(block, url)
    assert app.extensions["gridmap"].store.versions() == {Level.GRID: 2, Level.MICRO_GRID: 2}


# -- cleaning -----------------------------------------------------------------------------------------

def cleaned_rows(root: Node) -> list[tuple[str, float, float, float, float]]:
    rows = []
    for tr in root.one(id="cleaned").all("tr", data_code=True):
        cells = tr.all("td")
        before, after = (number(v) for v in cells[2].text.split("→"))
        rows.append((cells[0].text, before, after, number(cells[3].text), number(cells[4].text)))
    return rows


def test_an_upload_cleaned_lists_every_unit_whose_area_changed(block):
    url = draft(block, "micro_grid", micro(BUMPED), clean="1")
    root = read(block.get(url))

    # the bump lies in both W-S and E-S; cleaning gives it to W-S (the longer border), so E-S loses it
    assert cleaned_rows(root) == [("E-S", pytest.approx(geodesic_m2(E_S_BUMPED), abs=0.05),
                                   pytest.approx(geodesic_m2(CELLS["E-S"]), abs=0.05),
                                   pytest.approx(-geodesic_m2(BUMP), abs=0.05),
                                   pytest.approx(geodesic_m2(BUMP), abs=0.05))]
    assert root.one(id="cleaning").one("p").words() == (
        "Overlaps were given to a neighbour, gaps narrower than 2 m filled and corners closer than 0.1 m "
        "snapped. 1 unit(s) changed area:")
    assert page_data(root)["cleaned"] == ["E-S"]
    assert root.all(id="problems") == []                 # no overlap is left, nor the part outside grid E


def test_the_clean_form_of_a_draft_makes_a_cleaned_draft(block):
    url = draft(block, "micro_grid", micro(BUMPED), tolerance_m2="150")
    form = read(block.get(url)).one("form", id="clean-form")
    fields = {i.attrs["name"]: i.attrs.get("value") for i in form.all("input")}
    assert form.attrs["action"] == "/layers/micro_grid/versions/2/clean"
    assert fields.pop("csrf_token")          # the session's token (a bearer token needs none; forms carry it)
    assert fields == {"gap_width_m": "2", "snap_m": "0.1", "author": "tester", "note": "cleaned from version 2"}

    response = block.post(form.attrs["action"], data=fields)
    assert (response.status_code, response.headers["Location"]) == (303, "/layers/micro_grid/versions/3")
    root = read(block.get("/layers/micro_grid/versions/3"))
    assert [row[0] for row in cleaned_rows(root)] == ["E-S"]
    options = {tr.one("th").text: tr.one("td").text for tr in root.one(id="options").all("tr")}
    assert options["Clean overlaps and gaps"] == "gaps narrower than 2 m filled, corners closer than 0.1 m snapped"


def test_a_committed_version_without_coverage_problems_has_no_clean_form(block):
    root = read(block.get("/layers/micro_grid/versions/1"))
    assert root.all(id="clean-form") == [] and root.all(id="commit-form") == []
    assert root.one(id="status").text == "committed" and "This is the current version." in root.words()


def test_cleaning_is_offered_open_where_coverage_problems_are_and_folded_on_other_drafts(block):
    notch = box(0.009, 0.004, 0.011, 0.005)             # cut out of W-S and E-S: a gap the two enclose
    notched = {**CELLS, "W-S": CELLS["W-S"].difference(notch), "E-S": CELLS["E-S"].difference(notch)}
    url = draft(block, "micro_grid", micro(notched))
    commit(block, url)
    root = read(block.get(url))
    assert ("warning", "gap", 1, False) in groups(root)
    assert "open" in root.one("details", id="clean-box").attrs and root.all(id="commit-form") == []

    root = read(block.get(draft(block, "micro_grid", micro(CELLS), note="as before")))
    assert "open" not in root.one("details", id="clean-box").attrs


def test_the_comparison_page_has_no_report(block):
    commit(block, draft(block, "micro_grid", micro(MERGED)))
    root = read(block.get("/layers/micro_grid/versions/2/compare?with=1"))
    assert root.all(id="report") == []
    assert root.one(id="diff").one("h2").text == "Changes from version 1 to version 2"
    changes = [(r.attrs["data-change"], r.all("td")[1].text) for r in root.one(id="units-diff").all("tr")
               if "data-change" in r.attrs]
    assert changes == [("removed", "E-S"), ("reshaped", "W-S")]


# -- Boston: the page stays small ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def boston(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Wards committed as grids (cleaned: as they are, they overlap by up to 112 m²); no precinct yet."""
    if not (BOSTON / "precincts.geojson").is_file():
        pytest.skip(f"Boston 2015 wards/precincts not found at {BOSTON} (they live in ../shared beside the repository)")
    app = build_app(tmp_path_factory.mktemp("boston-review"), GRIDMAP_LANG="en")
    client = app.test_client()
    commit(client, draft(client, "grid", (BOSTON / "wards.geojson").read_bytes(), code_field="WARD", clean="1"))
    yield client
    app.extensions["gridmap"].store.close()


@pytest.fixture(scope="module")
def precincts() -> geopandas.GeoDataFrame:
    """The city's precincts as published (EPSG:2249, the CRS the file does not name), repaired."""
    frame = geopandas.read_file(BOSTON / "precincts.geojson").set_crs(2249, allow_override=True).to_crs(4326)
    return frame.set_geometry(shapely.make_valid(frame.geometry.to_numpy())).set_index("WARD_PRECINCT")


def boston_precincts(client: Any, **fields: str) -> Any:
    return upload(client, "micro_grid", (BOSTON / "precincts.geojson").read_bytes(), "precincts.geojson",
                  crs="EPSG:2249", code_field="WARD_PRECINCT", **fields)


def overlapping_pairs(units: geopandas.GeoDataFrame, *, above_m2: float) -> int:
    """Pairs of units overlapping by more than ``above_m2``, in Massachusetts State Plane metres."""
    plane = units.to_crs(26986).reset_index(names="code")
    pairs = geopandas.sjoin(plane, plane, predicate="intersects")
    pairs = pairs[pairs["code_left"] < pairs["code_right"]]
    overlaps = shapely.intersection(plane.geometry.to_numpy()[pairs.index],
                                    plane.geometry.to_numpy()[pairs["index_right"]])
    return int((shapely.area(overlaps) > above_m2).sum())


def test_boston_refused_precincts_page_is_small(boston, precincts):
    response = boston_precincts(boston)
    root = read(response)

    assert response.status_code == 400
    assert len(response.data) < PAGE_LIMIT_BYTES, len(response.data)
    # the overlaps counted independently: 44 pairs above 1 m² (the nearest others: 0.92 and 1.72 m²)
    assert groups(root)[0] == ("error", "overlap", overlapping_pairs(precincts, above_m2=1.0), True)
    assert groups(root)[0][2] == 44
    assert len(root.one("details", data_kind="overlap").all("tr", data_kind=True)) == 20
    data = page_data(root)
    assert len(data["groups"]["error-overlap"]["rest"]) == 24
    assert len(data["after"]["units"]) == 255
    assert root.one("a", id="clean-again").attrs["href"].endswith("&clean=1")


def test_boston_cleaned_precincts_draft_page_is_small(boston, precincts):
    url = boston_precincts(boston, clean="1").headers["Location"]
    response = boston.get(url)
    root = read(response)

    assert len(response.data) < PAGE_LIMIT_BYTES, len(response.data)
    assert "overlap" not in [g[1] for g in groups(root)]
    # every unit whose outline cleaning changed, found independently: the stored outline against the
    # city's, in State Plane metres; areas geodesic (pyproj), not gridmap's
    exact = page_data(root)["after"]["url"].replace("/api/outlines/", "/api/layers/")   # not simplified
    stored = geopandas.GeoDataFrame.from_features(boston.get(exact).get_json(), crs=4326)
    stored = stored.set_index("code")
    city = precincts.geometry.reindex(stored.index)
    moved = shapely.area(shapely.symmetric_difference(city.to_crs(26986).to_numpy(),
                                                      stored.geometry.to_crs(26986).to_numpy()))
    rows = cleaned_rows(root)
    assert sorted(r[0] for r in rows) == sorted(stored.index[moved > 0.01]) and len(rows) == 68
    for code, before, after, change, _ in rows:   # shown to 0.1 m²; the two area methods agree to ~0.01 m²
        assert (before, after) == (pytest.approx(geodesic_m2(city[code]), abs=0.1),
                                   pytest.approx(geodesic_m2(stored.geometry[code]), abs=0.1)), code
        assert change == pytest.approx(after - before, abs=0.11)
    assert [abs(r[3]) for r in rows] == sorted((abs(r[3]) for r in rows), reverse=True)
    assert rows[0][:4] == ("1810", 539420.3, 539050.1, -370.2)          # the largest change first
