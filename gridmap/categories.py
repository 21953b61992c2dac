"""Incident categories named in the seeds, with their Chinese and English labels."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    code: str
    label_zh: str
    label_en: str

    def label(self, lang: str) -> str:
        return self.label_en if lang == "en" else self.label_zh


CATEGORIES: tuple[Category, ...] = (
    Category("illegal_parking", "乱停乱放", "Illegal parking"),
    Category("flying_cable", "飞线充电", "Flying charging cable"),
    Category("private_wiring", "私拉电线", "Private wiring"),
    Category("clutter", "杂物堆积", "Piled clutter"),
    Category("illegal_ads", "小广告", "Illegal flyers"),
    Category("street_stall", "占道经营", "Stall occupying the road"),
    Category("litter", "乱扔垃圾", "Littering"),
    Category("unleashed_dog", "遛狗不牵绳", "Dog off leash"),
    Category("fire_hazard", "消防安全隐患", "Fire hazard"),
    Category("three_in_one", "三合一场所", "Three-in-one premises"),
    Category("dispute", "矛盾纠纷", "Neighbour dispute"),
    Category("road_damage", "路面坑洼", "Road damage"),
    Category("drain_blocked", "下水道堵塞", "Blocked drain"),
    Category("roof_leak", "房顶漏雨", "Leaking roof"),
    Category("other", "其他", "Other"),
)

BY_CODE: dict[str, Category] = {c.code: c for c in CATEGORIES}
OTHER = BY_CODE["other"]


def match(text: str) -> Category | None:
    """The category whose code or label (Chinese or English) is ``text``; None if none is."""
    key = text.strip().lower()
    for cat in CATEGORIES:
        if key in (cat.code, cat.label_zh, cat.label_en.lower()):
            return cat
    return None
