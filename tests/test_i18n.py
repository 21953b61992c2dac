"""Translations: every user-facing string in the code has a Chinese translation, compiled."""
from __future__ import annotations

import io
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
PO = ROOT / "translations" / "zh" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")


def source_messages() -> set[str]:
    method_map = [("gridmap/**.py", "python"), ("app.py", "python"), ("templates/**.html", "jinja2")]
    found = extract_from_dir(str(ROOT), method_map=method_map, keywords={"N_": None, "_": None, "gettext": None})
    return {msg for _, _, msg, _, _ in found if isinstance(msg, str)}


def po_messages() -> dict[str, str]:
    with PO.open("rb") as handle:
        return {m.id: m.string for m in read_po(handle) if m.id}


def test_every_source_string_is_translated_to_chinese():
    translated = po_messages()
    missing = sorted(source_messages() - set(translated))
    assert missing == [], "run the pybabel update steps in DEVELOPERS.md and translate these"
    assert sorted(k for k, v in translated.items() if not v) == []


def test_compiled_catalog_matches_the_po_file():
    po = po_messages()
    mo = {m.id: m.string for m in read_mo(io.BytesIO(MO.read_bytes())) if m.id}
    assert mo == po, "run: pybabel compile -d translations"
