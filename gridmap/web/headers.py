"""Security headers on every response, and the Content-Security-Policy that lets a page run only
gridmap's own scripts: files from ``/static`` and the one inline script a map page has (folium's),
which carries this response's nonce.  A value a file or a report smuggled into a page as a
``<script>`` or an ``onerror=`` handler would not run even if it escaped the escaping."""
from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import Flask, current_app, g
from markupsafe import Markup
from werkzeug.wrappers import Response


def init(app: Flask) -> None:
    app.after_request(_secure)
    app.add_template_global(csp_nonce)
    app.add_template_global(with_nonce)


def csp_nonce() -> str:
    """This response's nonce (one per request)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def with_nonce(script: Markup) -> Markup:
    """A ``<script>…</script>`` block gridmap made (folium's map script) with this response's nonce."""
    opening = "<script>"
    if not script.startswith(opening):
        raise ValueError("expected a <script> block without attributes")
    return Markup(f'<script nonce="{csp_nonce()}">') + Markup(script[len(opening):])


def _secure(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", _policy())
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    return response


def _policy() -> str:
    images = ["'self'", "data:", "blob:", *_tile_sources()]
    return "; ".join([
        "default-src 'self'", f"script-src 'self' 'nonce-{csp_nonce()}'",
        "style-src 'self' 'unsafe-inline'",         # Leaflet and folium position their parts with style
        f"img-src {' '.join(images)}", "font-src 'self' data:", "connect-src 'self'", "object-src 'none'",
        "base-uri 'self'", "form-action 'self'", "frame-ancestors 'none'"])


def _tile_sources() -> list[str]:
    """Where the basemap's tiles come from: the tile URL's scheme and host, ``{s}`` as a wildcard."""
    tiles = current_app.config["GRIDMAP_SETTINGS"].tiles
    if not tiles:
        return []
    marker = "gridmapsubdomain"
    parts = urlsplit(tiles.replace("{s}", marker))
    labels = (parts.hostname or "").split(".")
    if marker in labels[0]:
        labels[0] = "*"             # CSP takes a wildcard for a whole leftmost label only
    host = ".".join(labels)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return [f"{parts.scheme}://{host}{port}"] if parts.scheme in ("http", "https") and host else []
