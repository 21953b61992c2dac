"""Security headers and the Content-Security-Policy of every response."""
from __future__ import annotations

import io
import re

import pytest

from .conftest import build_app, grid_file, micro_file


def policy_of(response) -> dict[str, str]:
    return dict(part.split(" ", 1) for part in response.headers["Content-Security-Policy"].split("; "))


def test_a_map_page_runs_only_its_own_scripts_and_its_inline_script_carries_the_nonce(client):
    for level, data in (("grid", grid_file()), ("micro_grid", micro_file())):
        client.post(f"/api/layers/{level}", data={"file": (io.BytesIO(data), "f.geojson")},
                    content_type="multipart/form-data")
    response = client.get("/")
    policy = policy_of(response)
    nonce = re.fullmatch(r"'self' 'nonce-([\w-]+)'", policy["script-src"]).group(1)
    inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)([^>]*)>", response.text)
    assert inline == [f' nonce="{nonce}"']
    assert policy_of(client.get("/")) ["script-src"] != policy["script-src"]     # a new nonce each time
    assert (policy["default-src"], policy["connect-src"], policy["object-src"], policy["frame-ancestors"],
            policy["img-src"]) == ("'self'", "'self'", "'none'", "'none'", "'self' data: blob:")
    assert (response.headers["X-Content-Type-Options"], response.headers["X-Frame-Options"],
            response.headers["Referrer-Policy"]) == ("nosniff", "DENY", "same-origin")


@pytest.mark.parametrize(("tiles", "source"), [
    ("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png", "https://*.tile.openstreetmap.org"),
    ("http://t{s}.tianditu.gov.cn/vec_w/wmts?x={x}&y={y}&l={z}", "http://*.tianditu.gov.cn"),
    ("http://10.0.0.5:8080/tiles/{z}/{x}/{y}.png", "http://10.0.0.5:8080"),
])
def test_the_tiles_host_may_serve_images(tmp_path, tiles, source):
    app = build_app(tmp_path, GRIDMAP_TILES=tiles)
    assert policy_of(app.test_client().get("/health"))["img-src"] == f"'self' data: blob: {source}"
    app.extensions["gridmap"].store.close()
