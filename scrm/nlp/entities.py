"""Rule-based entity extraction for service messages, and phone masking for logs.

Entity types: ``order_no``, ``flight_no``, ``phone``, ``date``, ``time``, ``amount_fen`` (value is the
amount in fen as a decimal string), ``product`` (from the workspace catalogue), ``place`` (Chinese
cities and airports), ``seat``. Offsets are character offsets into the original text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import ahocorasick


@dataclass(frozen=True)
class Entity:
    type: str
    value: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value, "start": self.start, "end": self.end}


# IATA codes of airlines that fans of a Chinese brand mention most (mainland, HK/TW/Macau and major
# foreign carriers) plus ``YC`` for the demo airline 云程航空.
AIRLINE_CODES = frozenset(
    [
        "CA",
        "MU",
        "CZ",
        "HU",
        "3U",
        "ZH",
        "MF",
        "SC",
        "FM",
        "HO",
        "9C",
        "KN",
        "GS",
        "JD",
        "PN",
        "8L",
        "G5",
        "EU",
        "TV",
        "BK",
        "KY",
        "NS",
        "DZ",
        "QW",
        "GJ",
        "GX",
        "UQ",
        "Y8",
        "DR",
        "A6",
        "RY",
        "OQ",
        "GT",
        "CN",
        "JR",
        "LT",
        "TV",
        "YI",
        "9H",
        "YC",
        "HX",
        "UO",
        "CX",
        "KA",
        "NX",
        "BR",
        "CI",
        "MM",
        "JL",
        "NH",
        "KE",
        "OZ",
        "SQ",
        "TG",
        "MH",
        "VN",
        "EK",
        "QR",
        "EY",
        "LH",
        "AF",
        "BA",
        "KL",
        "AA",
        "UA",
        "DL",
        "AC",
        "QF",
        "NZ",
        "SU",
        "TK",
        "7C",
        "TW",
        "ZE",
        "LJ",
        "AK",
        "FD",
        "VJ",
    ]
)
# the most frequent codes are recognised without any flight wording around them
CORE_AIRLINE_CODES = frozenset(["CA", "MU", "CZ", "HU", "3U", "ZH", "MF", "SC", "FM", "HO", "9C", "KN", "YC"])
_FLIGHT_CONTEXT = (
    "航班",
    "飞机",
    "机场",
    "登机",
    "起飞",
    "落地",
    "延误",
    "航空",
    "值机",
    "飞",
    "flight",
    "座",
)

_FLIGHT_RE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z][A-Za-z0-9]|[0-9][A-Za-z])\s?(\d{3,4})(?![0-9])")
_SEAT_RE = re.compile(
    r"(?<![A-Za-z0-9.])(?:([1-9]\d?)\s?([A-HJ-Ka-hj-k])(?![A-Za-z0-9])|([1-9]\d?)排\s?([A-HJ-Ka-hj-k])座?)"
)
_SEAT_CONTEXT = ("座", "排", "seat", "航班", "飞机", "登机", "机舱", "舱", "值机", "落在", "丢在", "忘在")

_MOBILE_RE = re.compile(r"(?<![0-9])(?:(?:\+|00)?86[\s-]?)?(1[3-9]\d)[\s-]?(\d{4})[\s-]?(\d{4})(?![0-9])")
_LANDLINE_RE = re.compile(r"(?<![0-9])(?:(0\d{2,3})[\s-]|(0\d{2,3}))(\d{7,8})(?![0-9])")
_HOTLINE_RE = re.compile(r"(?<![0-9])([48]00)[\s-]?(\d{3})[\s-]?(\d{4})(?![0-9])")

_ORDER_CTX_RE = re.compile(
    r"(?:订单编?号?|单号|运单号?|快递单号?|票号|订单|order\s*(?:no\.?|number|id|#)?)\s*(?:是|为)?\s*[:：#＃]?\s*"
    r"([A-Za-z]{0,4}\d[A-Za-z0-9-]{5,31})",
    re.IGNORECASE,
)
_LONG_DIGITS_RE = re.compile(r"(?<![0-9A-Za-z])(\d{10,30})(?![0-9A-Za-z])")

_CN_NUM = "零〇一二两三四五六七八九十百千万"
_DATE_RE = re.compile(
    r"(?:\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*[日号]?"
    r"|\d{1,2}\s*月\s*\d{1,2}\s*[日号]"
    rf"|[{_CN_NUM}]{{1,3}}月[{_CN_NUM}]{{1,3}}[日号]"
    r"|\d{1,2}\s*[日号](?=[^0-9a-zA-Z]|$)"
    r"|(?<![0-9/])\d{1,2}/\d{1,2}(?![0-9/])"
    r"|大前天|前天|昨天|昨日|昨晚|今天|今日|今晚|明天|明日|明晚|后天|大后天|上午|下午"
    r"|(?:上上|下下|上|下|这|本)?(?:周|星期|礼拜)[一二三四五六日天末]"
    r"|(?:上|下|这|本)(?:周|个月|月)"
    r"|月底|月初|元旦|春节|国庆|五一|中秋|双十一|双11|618)"
)
_TIME_RE = re.compile(
    r"(?:(?:凌晨|早上|早晨|上午|中午|下午|傍晚|晚上|半夜|夜里)?\s*"
    rf"(?:\d{{1,2}}|[{_CN_NUM}]{{1,3}})\s*[点點时](?:\s*(?:\d{{1,2}}|[{_CN_NUM}]{{1,3}})\s*分?|半|一刻|三刻|多|整)?"
    r"|(?<![0-9])(?:[01]?\d|2[0-3])\s*[:：]\s*[0-5]\d(?![0-9]))"
)
_AMOUNT_RE = re.compile(
    r"(?:[¥￥]\s*(\d+(?:\.\d{1,2})?)"
    r"|(?:rmb|RMB|人民币)\s*(\d+(?:\.\d{1,2})?)"
    r"|(\d+(?:\.\d+)?)\s*(万|千|k|K|w|W)?\s*(?:元|块钱|块|rmb|RMB|圆)(?:(\d)角?)?"
    rf"|([{_CN_NUM}]{{1,8}})\s*(?:元|块钱|块))"
)

CITIES = [
    "北京",
    "上海",
    "天津",
    "重庆",
    "广州",
    "深圳",
    "成都",
    "杭州",
    "武汉",
    "西安",
    "南京",
    "苏州",
    "郑州",
    "长沙",
    "沈阳",
    "青岛",
    "宁波",
    "东莞",
    "无锡",
    "昆明",
    "大连",
    "厦门",
    "合肥",
    "佛山",
    "福州",
    "哈尔滨",
    "济南",
    "温州",
    "长春",
    "石家庄",
    "常州",
    "泉州",
    "南宁",
    "贵阳",
    "南昌",
    "南通",
    "金华",
    "徐州",
    "太原",
    "嘉兴",
    "烟台",
    "惠州",
    "保定",
    "台州",
    "中山",
    "绍兴",
    "乌鲁木齐",
    "潍坊",
    "兰州",
    "珠海",
    "海口",
    "三亚",
    "拉萨",
    "西宁",
    "银川",
    "呼和浩特",
    "桂林",
    "丽江",
    "大理",
    "西双版纳",
    "张家界",
    "黄山",
    "九寨沟",
    "敦煌",
    "喀什",
    "延吉",
    "汕头",
    "湛江",
    "洛阳",
    "宜昌",
    "襄阳",
    "芜湖",
    "扬州",
    "镇江",
    "绵阳",
    "泸州",
    "宜宾",
    "遵义",
    "北海",
    "柳州",
    "赣州",
    "九江",
    "景德镇",
    "秦皇岛",
    "唐山",
    "邯郸",
    "包头",
    "鄂尔多斯",
    "大庆",
    "齐齐哈尔",
    "牡丹江",
    "吉林",
    "威海",
    "日照",
    "临沂",
    "淄博",
    "济宁",
    "盐城",
    "连云港",
    "舟山",
    "义乌",
    "揭阳",
    "梅州",
    "江门",
    "肇庆",
    "清远",
    "韶关",
    "万州",
    "达州",
    "南充",
    "西昌",
    "攀枝花",
    "林芝",
    "日喀则",
    "香港",
    "澳门",
    "台北",
    "高雄",
    "东京",
    "大阪",
    "首尔",
    "曼谷",
    "新加坡",
    "吉隆坡",
    "悉尼",
    "伦敦",
    "巴黎",
    "纽约",
    "洛杉矶",
    "旧金山",
    "迪拜",
    "莫斯科",
    "法兰克福",
]
AIRPORTS = [
    "浦东机场",
    "虹桥机场",
    "首都机场",
    "大兴机场",
    "白云机场",
    "宝安机场",
    "双流机场",
    "天府机场",
    "萧山机场",
    "江北机场",
    "咸阳机场",
    "禄口机场",
    "长水机场",
    "天河机场",
    "黄花机场",
    "高崎机场",
    "流亭机场",
    "胶东机场",
    "地窝堡机场",
    "凤凰机场",
    "美兰机场",
    "桃仙机场",
    "太平机场",
    "龙洞堡机场",
    "新郑机场",
    "遥墙机场",
    "滨海机场",
    "硕放机场",
    "栎社机场",
    "龙嘉机场",
    "周水子机场",
    "吴圩机场",
    "昌北机场",
    "武宿机场",
    "正定机场",
    "中川机场",
    "河东机场",
    "白塔机场",
    "贡嘎机场",
    "曹家堡机场",
    "两江机场",
    "新桥机场",
    "长乐机场",
    "赤鹰机场",
    "浦东",
    "虹桥",
    "首都机场T3",
    "大兴国际机场",
    "浦东国际机场",
    "白云国际机场",
    "天府国际机场",
    "双流国际机场",
    "T1航站楼",
    "T2航站楼",
    "T3航站楼",
    "一号航站楼",
    "二号航站楼",
]


@lru_cache(maxsize=1)
def _place_automaton() -> ahocorasick.Automaton:
    auto = ahocorasick.Automaton()
    for name in (*CITIES, *AIRPORTS):
        auto.add_word(name, name)
    auto.make_automaton()
    return auto


def _cn_to_int(s: str) -> int | None:
    digits = {
        "零": 0,
        "〇": 0,
        "一": 1,
        "二": 2,
        "两": 2,
        "三": 3,
        "四": 4,
        "五": 5,
        "六": 6,
        "七": 7,
        "八": 8,
        "九": 9,
    }
    units = {"十": 10, "百": 100, "千": 1000, "万": 10000}
    total, section, num = 0, 0, 0
    seen = False
    for ch in s:
        if ch in digits:
            num = digits[ch]
            seen = True
        elif ch in units:
            u = units[ch]
            seen = True
            if u == 10000:
                total += (section + num) * u
                section, num = 0, 0
            else:
                section += (num or 1) * u
                num = 0
        else:
            return None
    return total + section + num if seen else None


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in taken)


def _norm_with_map(text: str) -> tuple[str, list[int]]:
    """NFKC/lower-cased text without whitespace and a map from its indices to *text* indices."""
    chars: list[str] = []
    idx: list[int] = []
    for i, ch in enumerate(text):
        n = unicodedata.normalize("NFKC", ch).lower()
        for c in n:
            if not c.isspace():
                chars.append(c)
                idx.append(i)
    return "".join(chars), idx


class _CharNorm(dict[int, str]):
    """str.translate table, filled on demand: each character → its NFKC lower-case form without
    whitespace (exactly what ``_norm_with_map`` does per character), so that a whole text is
    normalised by one C-level ``translate`` call."""

    def __missing__(self, cp: int) -> str:
        n = "".join(c for c in unicodedata.normalize("NFKC", chr(cp)).lower() if not c.isspace())
        self[cp] = n
        return n


_CHAR_NORM = _CharNorm()


@lru_cache(maxsize=64)
def _catalogue_keys(items: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(normalised key, name), longest key first, for a catalogue (cached: callers pass the same
    catalogue for every message of a workspace)."""
    keyed = [(_norm_with_map(c)[0], c) for c in items if c and c.strip()]
    return tuple(sorted(((k, c) for k, c in keyed if k), key=lambda kv: -len(kv[0])))


def _catalogue_entities(text: str, catalogue: Iterable[str]) -> list[Entity]:
    keyed = _catalogue_keys(tuple(catalogue))
    if not keyed:
        return []
    quick = text.translate(_CHAR_NORM)  # equals _norm_with_map(text)[0]
    if not any(key in quick for key, _ in keyed):
        return []
    norm, idx = _norm_with_map(text)
    found: list[Entity] = []
    taken: list[tuple[int, int]] = []
    for key, name in keyed:
        pos = norm.find(key)
        while pos >= 0:
            a, b = idx[pos], idx[pos + len(key) - 1] + 1
            after = norm[pos + len(key)] if pos + len(key) < len(norm) else ""
            # do not match "mate 60" inside "mate 600"; do match before CJK or punctuation
            if not (key[-1].isalnum() and after.isascii() and after.isalnum()) and not _overlaps(
                (a, b), taken
            ):
                taken.append((a, b))
                found.append(Entity("product", name, a, b))
            pos = norm.find(key, pos + 1)
    return found


# Cheap necessary conditions, checked before the expensive patterns (a pattern is only run when
# its trigger occurs in the text; see test_entities for the equivalence check):
# every phone/order/flight/seat pattern needs a digit; the others need one of these characters.
_HAS_DIGIT = re.compile(r"\d")
_AMOUNT_TRIGGER = re.compile(r"[¥￥元块圆]|rmb|RMB|人民币")
_TIME_TRIGGER = re.compile(r"[点點时:：]")
_DATE_TRIGGER = re.compile(r"[\d月日号天晚午周期拜底初旦节庆秋]|五一|十一")


def extract_entities(text: str, catalogue: Sequence[str] = ()) -> list[Entity]:
    """All entities in *text*, sorted by position. Overlaps are resolved by priority:
    phone > order_no > flight_no > product > seat > amount > date/time > place."""
    out: list[Entity] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, value: str, start: int, end: int) -> None:
        if not _overlaps((start, end), taken):
            taken.append((start, end))
            out.append(Entity(kind, value, start, end))

    has_digit = _HAS_DIGIT.search(text) is not None
    lower = text.lower()
    if has_digit:
        for m in _MOBILE_RE.finditer(text):
            add("phone", "".join(m.groups()), m.start(), m.end())
        for m in _HOTLINE_RE.finditer(text):
            add("phone", "".join(m.groups()), m.start(), m.end())
        for m in _ORDER_CTX_RE.finditer(text):
            add("order_no", m.group(1).upper(), m.start(1), m.end(1))
        for m in _LONG_DIGITS_RE.finditer(text):
            add("order_no", m.group(1), m.start(1), m.end(1))
        for m in _LANDLINE_RE.finditer(text):
            add("phone", (m.group(1) or m.group(2)) + m.group(3), m.start(), m.end())
        flight_ctx = any(w in lower for w in _FLIGHT_CONTEXT)
        for m in _FLIGHT_RE.finditer(text):
            code = m.group(1).upper()
            known = code in AIRLINE_CODES
            if (code in CORE_AIRLINE_CODES and m.group(1).isupper()) or (
                flight_ctx and (known or m.group(1).isupper())
            ):
                add("flight_no", code + m.group(2), m.start(), m.end())
    if catalogue:
        for ent in _catalogue_entities(text, catalogue):
            add(ent.type, ent.value, ent.start, ent.end)
    if has_digit and (any(w in lower for w in _SEAT_CONTEXT) or any(e.type == "flight_no" for e in out)):
        for m in _SEAT_RE.finditer(text):
            row, letter = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            add("seat", f"{int(row)}{letter.upper()}", m.start(), m.end())
    if _AMOUNT_TRIGGER.search(text):
        for m in _AMOUNT_RE.finditer(text):
            fen = _amount_fen(m)
            if fen is not None:
                add("amount_fen", str(fen), m.start(), m.end())
    if _TIME_TRIGGER.search(text):
        for m in _TIME_RE.finditer(text):
            val = m.group(0).strip()
            if val:
                add("time", val, m.start(), m.end())
    if _DATE_TRIGGER.search(text):
        for m in _DATE_RE.finditer(text):
            add("date", m.group(0), m.start(), m.end())
    places = [(end - len(name) + 1, end + 1, name) for end, name in _place_automaton().iter(text)]
    for start, end, name in sorted(places, key=lambda p: (p[0] - p[1], p[0])):
        add("place", name, start, end)
    out.sort(key=lambda e: (e.start, e.end))
    return out


def _amount_fen(m: re.Match[str]) -> int | None:
    try:
        if m.group(1) is not None:
            return round(float(m.group(1)) * 100)
        if m.group(2) is not None:
            return round(float(m.group(2)) * 100)
        if m.group(3) is not None:
            value = float(m.group(3))
            mult = {"万": 10000, "w": 10000, "W": 10000, "千": 1000, "k": 1000, "K": 1000}.get(
                m.group(4) or "", 1
            )
            jiao = int(m.group(5)) if m.group(5) else 0
            return round(value * mult * 100) + jiao * 10
        if m.group(6) is not None:
            v = _cn_to_int(m.group(6))
            return None if v is None else v * 100
    except ValueError:
        return None
    return None


def _mask_mobile(m: re.Match[str]) -> str:
    s = m.group(0)
    digits = [i for i, c in enumerate(s) if c.isdigit()]
    # keep country code, the first three and the last four digits of the subscriber number
    keep_head = len(digits) - 8
    masked = list(s)
    for i in digits[keep_head : keep_head + 4]:
        masked[i] = "*"
    return "".join(masked)


def _mask_landline(m: re.Match[str]) -> str:
    s = m.group(0)
    digits = [i for i, c in enumerate(s) if c.isdigit()]
    masked = list(s)
    for i in digits[-8:-4] if len(digits) >= 10 else digits[-7:-4]:
        masked[i] = "*"
    return "".join(masked)


def mask_phone(text: str) -> str:
    """Mask phone numbers for logs: ``13812345678`` → ``138****5678``; landlines keep area code and
    the last four digits. Other text is unchanged."""
    text = _MOBILE_RE.sub(_mask_mobile, text)
    text = _LANDLINE_RE.sub(_mask_landline, text)
    return text
