"""The dashboard on the statistics tests' 4×4 block (a cluster in the south-west, a pile of 60 on
one coordinate in the north-east), with some incidents closed in March and February."""
from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from .test_stats import block  # noqa: F401 - the fixture


@pytest.fixture
def closed(block):  # noqa: F811 - the fixture above
    def at(lon, lat, when, status, n):
        return [{"category": "illegal_parking", "lon": lon + k * 1e-5, "lat": lat, "reported_at": when,
                 "status": status} for k in range(n)]
    extra = at(0.0051, 0.0021, "2026-03-10 09:00", "closed", 10)
    extra += at(0.0051, 0.0031, "2026-02-10 09:00", "closed", 2) + at(0.0151, 0.0031, "2026-02-10 09:00", "closed", 9)
    assert block.post("/api/incidents", json=extra).status_code == 201
    return block


def page(client, query: str = "") -> str:
    response = client.get("/dashboard" + query)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_dashboard_shows_the_months_table_the_hot_spots_the_weeks_and_the_rhythm(closed):
    html = page(closed)
    assert '<strong id="dash-total">167</strong>' in html                 # 86 + 60 piled + 21
    assert "60 incidents sit on 1 stacked coordinates" in html
    league = html.split('id="league"', 1)[1].split("</section>", 1)[0]
    assert "League table 2026-03" in league and "change since 2026-02" in league
    rows = re.findall(r"<tr><td>(\d+)</td><td>[^<]*<small>(r\dc\d)</small>", league)
    assert rows[:2] == [("1", "r0c0"), ("2", "r1c1")]
    assert 'href="/api/rankings?month=2026-03&amp;format=xlsx"' in league
    spots = html.split('id="hotspots"', 1)[1].split("</section>", 1)[0]
    assert 'href="/?unit=r0c0"' in spots and "hot spot, confidence" in spots
    # the map of the hot spots: the report's page, drawn on the server at screen resolution
    src = re.search(r'<img class="dash-map" id="hotspot-map" src="([^"]+)"', spots).group(1).replace("&amp;", "&")
    assert src == "/api/report-map?overlay=hotspots&dpi=100"
    image = closed.get(src)
    assert (image.status_code, image.mimetype) == (200, "image/png")
    assert Image.open(io.BytesIO(image.data)).size == (1169, 827)          # A4 at 100 dpi
    assert 'href="/api/report-map?overlay=hotspots&amp;format=pdf"' in spots
    weekly = html.split('id="weekly"', 1)[1].split("</section>", 1)[0]
    # the pile of 60 (litter) is left out of the charts as of the hot spots
    assert weekly.count("<polyline") == 2 and "Littering (86)" in weekly and "Illegal parking (21)" in weekly
    rhythm = html.split('id="rhythm"', 1)[1].split("</section>", 1)[0]
    assert re.findall(r"<tr><th>(\w+)</th>", rhythm) == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert rhythm.count("<td title=") == 7 * 24
    # Thursday 5 March 10h holds the 86 (the pile of 60 left out), the busiest hour
    assert "busiest hour: 86" in rhythm


def test_the_dashboard_keeps_the_filters_and_its_size_does_not_follow_the_incidents(closed):
    html = page(closed, "?category=illegal_parking")
    assert '<strong id="dash-total">21</strong>' in html
    assert 'href="/?category=illegal_parking"' in html                  # "open the map" with the same filters
    assert 'src="/api/report-map?category=illegal_parking&amp;overlay=hotspots&amp;dpi=100"' in html
    empty = page(closed, "?category=fire_hazard")
    assert "No significant hot spot." in empty and "No incidents." in empty
    assert abs(len(page(closed)) - len(page(closed, "?stacked=1"))) < 2_000


def test_an_empty_store_has_a_dashboard_too(client):
    html = page(client)
    assert '<strong id="dash-total">0</strong>' in html


def test_the_statistics_page_lists_every_units_figures_sorted_by_any_column(closed):
    html = page_at(closed, "/statistics?sort=closure_rate")
    rows = re.findall(r"<tr><td>[^<]*<small>(r\dc\d)</small></td>\s*((?:<td>[^<]*</td>\s*)+)</tr>", html)
    assert len(rows) == 16
    figures = {f["code"]: f for f in closed.get("/api/statistics").get_json()["rows"]}
    rates = [figures[code]["closure_rate"] for code, _ in rows]
    known = [r for r in rates if r is not None]
    assert known == sorted(known, reverse=True) and rates[len(known):] == [None] * (len(rates) - len(known))
    first_code, cells = rows[0]
    values = re.findall(r"<td>([^<]*)</td>", cells)
    assert values[0] == str(figures[first_code]["incidents"])
    assert values[3] == f"{100 * figures[first_code]['closure_rate']:.0f}%"
    assert 'href="/api/statistics?level=micro_grid&amp;format=xlsx"' in html
    assert page_at(closed, "/statistics?level=grid").count("<tr><td>") == 0      # no grid level here


def page_at(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)
