"""Incident categories named in the seeds, with their Chinese and English labels."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    code: str
    label_zh: str
    label_en: str
    aliases: tuple[str, ...] = ()   # other words real reports use for it (see shared/domain.md)

    def label(self, lang: str) -> str:
        return self.label_en if lang == "en" else self.label_zh


CATEGORIES: tuple[Category, ...] = (
    Category("illegal_parking", "乱停乱放", "Illegal parking", ("车辆乱停", "乱停车", "违章停车", "违停")),
    Category("flying_cable", "飞线充电", "Flying charging cable", ("飞线", "私拉电线充电")),
    Category("private_wiring", "私拉电线", "Private wiring", ("乱拉线", "乱拉电线", "私拉乱接")),
    Category("clutter", "杂物堆积", "Piled clutter", ("堆物", "楼道堆物", "乱堆乱放")),
    Category("illegal_ads", "小广告", "Illegal flyers", ("乱贴小广告", "非法小广告")),
    Category("street_stall", "占道经营", "Stall occupying the road", ("商铺占道", "出店经营", "流动摊贩")),
    Category("litter", "乱扔垃圾", "Littering", ("垃圾分类", "垃圾乱扔")),
    Category("unleashed_dog", "遛狗不牵绳", "Dog off leash", ("遛狗不拴绳",)),
    Category("fire_hazard", "消防安全隐患", "Fire hazard", ("消防通道堵塞", "消防隐患", "堵塞消防通道")),
    Category("three_in_one", "三合一场所", "Three-in-one premises", ("“三合一”场所", '"三合一"场所', "三合一")),
    Category("dispute", "矛盾纠纷", "Neighbour dispute", ("邻里纠纷",)),
    Category("road_damage", "路面坑洼", "Road damage", ("路面破损", "道路破损")),
    Category("drain_blocked", "下水道堵塞", "Blocked drain", ("下水道不通", "管道堵塞")),
    Category("roof_leak", "房顶漏雨", "Leaking roof", ("屋顶漏雨", "漏雨")),
    Category("other", "其他", "Other"),
)

BY_CODE: dict[str, Category] = {c.code: c for c in CATEGORIES}
OTHER = BY_CODE["other"]


def match(text: str) -> Category | None:
    """The category whose code, label (Chinese or English) or alias is ``text``; None if none is."""
    return _BY_WORD.get(text.strip().lower())


_BY_WORD: dict[str, Category] = {
    word.lower(): cat for cat in CATEGORIES for word in (cat.code, cat.label_zh, cat.label_en, *cat.aliases)}
