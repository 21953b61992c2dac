"""Fill in Chinese translations: ``python scripts/translate.py FILE.json`` where the JSON maps
msgid → msgstr; entries already translated are left alone.  Used after `pybabel update`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

PO = Path(__file__).resolve().parents[1] / "translations" / "zh" / "LC_MESSAGES" / "messages.po"


def main(path: str) -> None:
    wanted = json.loads(Path(path).read_text(encoding="utf-8"))
    with PO.open("rb") as handle:
        catalog = read_po(handle, locale="zh")
    filled = 0
    for message in catalog:
        if message.id and not message.string and message.id in wanted:
            message.string = wanted[message.id]
            filled += 1
    with PO.open("wb") as handle:
        write_po(handle, catalog, width=76, omit_header=False)
    missing = [m.id for m in catalog if m.id and not m.string]
    print(f"filled {filled}; still untranslated: {len(missing)}")
    for msgid in missing:
        print("  ", msgid)


if __name__ == "__main__":
    main(sys.argv[1])
