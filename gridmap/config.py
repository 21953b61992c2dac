"""Settings read from the environment (no Flask here: the CLI and the web share them)."""
from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .coordinates import CHINA, ServiceArea
from .lifecycle import Deadlines
from .validation import DEFAULT_TOLERANCE_M2

DEFAULT_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
DEFAULT_ATTRIBUTION = "© OpenStreetMap contributors"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = PROJECT_ROOT / "geodata" / "demo"
#: A million-row incident CSV is about 70 MB; uploads are spooled to a temporary file, not held whole.
DEFAULT_MAX_UPLOAD_MB = 256


@dataclass(frozen=True)
class Settings:
    """How one gridmap deployment is set up."""

    database_url: str
    tiles: str | None            # a URL template, or None for a plain background
    tiles_attribution: str
    lang: str                    # "zh" or "en": the default UI language
    load_demo: bool              # load the demo data when the store is empty
    timezone: str                # wall-clock zone for report times
    service_area: ServiceArea | None = CHINA   # where boundaries may lie (swapped lat/lon shows)
    tolerance_m2: float = DEFAULT_TOLERANCE_M2  # gaps/overlaps smaller than this are not reported
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB  # the largest request body (an upload) accepted
    deadlines: Deadlines = Deadlines()          # hours from report to close, per category
    tiles_crs: str = "WGS84"                    # the tiles' system: WGS84 (also CGCS2000) or GCJ02 (Gaode-style)
    tiles_subdomains: str = "abc"               # what {s} in the tile URL runs over (Tianditu: 01234567)
    public_read: bool = False                   # maps and figures open to visitors who have not signed in
    secret_key: str | None = None               # signs sessions; GRIDMAP_SECRET_KEY, else instance/secret_key
    instance_dir: Path = PROJECT_ROOT / "instance"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, instance_dir: Path | None = None) -> "Settings":
        env = os.environ if env is None else env
        instance = instance_dir or PROJECT_ROOT / "instance"
        tiles = env.get("GRIDMAP_TILES", DEFAULT_TILES).strip()
        if tiles.lower() not in ("", "none", "off") and not all(k in tiles for k in ("{z}", "{x}", "{y}")):
            raise ValueError(f"GRIDMAP_TILES={tiles!r} is not a tile URL template: it needs {{z}}, {{x}} and "
                             "{y} (e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png), or `none`")
        return cls(
            database_url=env.get("GRIDMAP_DATABASE_URL") or f"sqlite:///{instance / 'gridmap.db'}",
            tiles=None if tiles.lower() in ("", "none", "off") else tiles,
            tiles_attribution=env.get("GRIDMAP_TILES_ATTRIBUTION",
                                      DEFAULT_ATTRIBUTION if tiles == DEFAULT_TILES else ""),
            lang="en" if env.get("GRIDMAP_LANG", "zh").lower().startswith("en") else "zh",
            load_demo=env.get("GRIDMAP_LOAD_DEMO", "1").strip().lower() not in ("0", "false", "no", "off"),
            timezone=env.get("GRIDMAP_TIMEZONE", "Asia/Shanghai"),
            service_area=ServiceArea.parse(env.get("GRIDMAP_SERVICE_AREA", str(CHINA))),
            tolerance_m2=_tolerance(env.get("GRIDMAP_TOLERANCE_M2", str(DEFAULT_TOLERANCE_M2))),
            max_upload_mb=_megabytes(env.get("GRIDMAP_MAX_UPLOAD_MB", str(DEFAULT_MAX_UPLOAD_MB))),
            deadlines=Deadlines.parse(env.get("GRIDMAP_DEADLINES", "")),
            tiles_crs=_tiles_crs(env.get("GRIDMAP_TILES_CRS", "WGS84")),
            tiles_subdomains=env.get("GRIDMAP_TILES_SUBDOMAINS", "abc").strip() or "abc",
            public_read=env.get("GRIDMAP_PUBLIC_READ", "0").strip().lower() in ("1", "true", "yes", "on"),
            secret_key=env.get("GRIDMAP_SECRET_KEY") or None,
            instance_dir=instance,
        )

    def session_key(self) -> str:
        """The key that signs sessions: GRIDMAP_SECRET_KEY, else one made once into the instance
        folder (readable by the service's user only), which every server process then shares."""
        if self.secret_key:
            return self.secret_key
        path = self.instance_dir / "secret_key"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            for _ in range(100):         # another process may be writing it this moment
                if key := path.read_text().strip():
                    return key
                time.sleep(0.01)
            raise RuntimeError(f"{path} is empty; delete it or set GRIDMAP_SECRET_KEY") from None
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
        return path.read_text().strip()


def _tiles_crs(text: str) -> str:
    value = text.strip().upper().replace("-", "")
    if value in ("WGS84", "CGCS2000", "EPSG:4326", "EPSG:4490"):
        return "WGS84"                 # the same at map scale
    if value == "GCJ02":
        return "GCJ02"
    raise ValueError(f"GRIDMAP_TILES_CRS={text!r} is not a tile system; expected WGS84 (also CGCS2000) or GCJ02 "
                     "(Gaode/AMap-style tiles)")


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"GRIDMAP_TOLERANCE_M2={text!r} is not an area; expected square metres >= 0, e.g. 1")
    return value


def _megabytes(text: str) -> int:
    if not (text.strip().isascii() and text.strip().isdigit() and int(text) > 0):
        raise ValueError(f"GRIDMAP_MAX_UPLOAD_MB={text!r} is not a size; expected a whole number of megabytes, "
                         "e.g. 256")
    return int(text)
