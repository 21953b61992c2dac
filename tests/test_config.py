"""Settings from the environment."""
from __future__ import annotations

from pathlib import Path

import pytest

from gridmap.config import Settings


def test_defaults(tmp_path: Path):
    settings = Settings.from_env({}, instance_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'gridmap.db'}"
    assert (settings.tiles, settings.tiles_attribution) == (
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "© OpenStreetMap contributors")
    assert (settings.lang, settings.load_demo, settings.timezone) == ("zh", True, "Asia/Shanghai")


def test_overrides(tmp_path: Path):
    settings = Settings.from_env({"GRIDMAP_TILES": "none", "GRIDMAP_LANG": "en", "GRIDMAP_LOAD_DEMO": "0",
                                  "GRIDMAP_DATABASE_URL": "sqlite:////srv/g.db"}, instance_dir=tmp_path)
    assert (settings.tiles, settings.lang, settings.load_demo, settings.database_url) == (
        None, "en", False, "sqlite:////srv/g.db")
    intranet = Settings.from_env({"GRIDMAP_TILES": "http://10.0.0.5/tiles/{z}/{x}/{y}.png"}, instance_dir=tmp_path)
    assert (intranet.tiles, intranet.tiles_attribution) == ("http://10.0.0.5/tiles/{z}/{x}/{y}.png", "")


def test_a_tile_setting_without_placeholders_fails_at_start_up(tmp_path: Path):
    with pytest.raises(ValueError, match=r"GRIDMAP_TILES='http://t/\{zoom\}.png' is not a tile URL template"):
        Settings.from_env({"GRIDMAP_TILES": "http://t/{zoom}.png"}, instance_dir=tmp_path)


def test_the_upload_cap_is_a_setting(tmp_path: Path):
    assert Settings.from_env({}, instance_dir=tmp_path).max_upload_mb == 256
    assert Settings.from_env({"GRIDMAP_MAX_UPLOAD_MB": "1024"}, instance_dir=tmp_path).max_upload_mb == 1024
    for bad in ("0", "1.5", "lots", "-3"):
        with pytest.raises(ValueError, match=f"GRIDMAP_MAX_UPLOAD_MB='{bad}' is not a size"):
            Settings.from_env({"GRIDMAP_MAX_UPLOAD_MB": bad}, instance_dir=tmp_path)


def test_the_tiles_system_is_wgs84_or_gcj02():
    assert Settings.from_env({"GRIDMAP_TILES_CRS": "gcj-02"}).tiles_crs == "GCJ02"
    assert Settings.from_env({"GRIDMAP_TILES_CRS": "CGCS2000"}).tiles_crs == "WGS84"     # the same at map scale
    assert Settings.from_env({}).tiles_crs == "WGS84" and Settings.from_env({}).tiles_subdomains == "abc"
    assert Settings.from_env({"GRIDMAP_TILES_SUBDOMAINS": "01234567"}).tiles_subdomains == "01234567"
    with pytest.raises(ValueError, match="GRIDMAP_TILES_CRS='BD09' is not a tile system"):
        Settings.from_env({"GRIDMAP_TILES_CRS": "BD09"})
