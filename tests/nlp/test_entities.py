from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from scrm.nlp.entities import extract_entities, mask_phone

LOST = "@云程航空 昨天 MU5137 上海飞成都，黑色双肩包落在 32C 座位上了，急！"


def _by_type(text: str, catalogue: tuple[str, ...] = ()) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in extract_entities(text, catalogue):
        assert text[e.start : e.end]  # offsets point into the text
        out.setdefault(e.type, []).append(e.value)
    return out


def test_flight_seat_places_date_in_lost_item_message() -> None:
    ents = _by_type(LOST)
    assert ents["flight_no"] == ["MU5137"]
    assert ents["seat"] == ["32C"]
    assert ents["place"] == ["上海", "成都"]
    assert ents["date"] == ["昨天"]
    assert "phone" not in ents


def test_offsets_match_surface_text() -> None:
    for e in extract_entities(LOST):
        if e.type in ("flight_no", "seat", "place"):
            assert LOST[e.start : e.end].replace(" ", "") == e.value


def test_flight_numbers_various_codes_and_case() -> None:
    assert _by_type("CZ3101 广州到北京延误了")["flight_no"] == ["CZ3101"]
    assert _by_type("坐3U8633去成都的航班")["flight_no"] == ["3U8633"]
    assert _by_type("yc8848航班延误")["flight_no"] == ["YC8848"]
    # a product model is not a flight number
    assert "flight_no" not in _by_type("我的手机是GT2000，屏幕碎了")


def test_seat_needs_context() -> None:
    assert "seat" not in _by_type("5G信号太差了，4K视频卡顿")
    assert _by_type("我坐在12排A座")["seat"] == ["12A"]


def test_order_phone_amount_product_date_time() -> None:
    text = "订单号 202405061234567 的Mate 60 Pro还没发货，电话13812345678，3月5日下午3点半付了5999元"
    ents = _by_type(text, ("Mate 60", "Mate 60 Pro", "X9"))
    assert ents["order_no"] == ["202405061234567"]
    assert ents["phone"] == ["13812345678"]
    assert ents["product"] == ["Mate 60 Pro"]  # longest catalogue match wins
    assert ents["amount_fen"] == ["599900"]
    assert ents["date"] == ["3月5日"]
    assert ents["time"] == ["下午3点半"]


def test_amounts_in_fen() -> None:
    assert _by_type("退我¥120.5")["amount_fen"] == ["12050"]
    assert _by_type("花了两千块")["amount_fen"] == ["200000"]
    assert _by_type("1.2万元的电脑")["amount_fen"] == ["1200000"]


def test_catalogue_matching_ignores_case_and_spaces() -> None:
    ents = _by_type("买了iphone15 pro 才三天", ("iPhone 15 Pro", "iPhone 15"))
    assert ents["product"] == ["iPhone 15 Pro"]


def test_airport_longest_match() -> None:
    assert _by_type("明天14:30在浦东机场T2航站楼")["place"] == ["浦东机场", "T2航站楼"]


def test_mask_phone() -> None:
    assert mask_phone("电话13812345678，谢谢") == "电话138****5678，谢谢"
    assert mask_phone("手机 138-1234-5678") == "手机 138-****-5678"
    assert mask_phone("+86 13912345678") == "+86 139****5678"
    masked = mask_phone("座机 021-62345678")
    assert "6234" not in masked and masked.endswith("5678")
    # order numbers and flight numbers are left alone
    assert mask_phone("订单202405061234567 MU5137") == "订单202405061234567 MU5137"


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True), st.text(alphabet="你好谢谢请问，。 ", max_size=8))
def test_mask_phone_never_leaks_middle_digits(phone: str, around: str) -> None:
    out = mask_phone(around + phone + around)
    assert phone not in out
    assert re.search(phone[:3] + r"\*{4}" + phone[-4:], out)


def test_pattern_triggers_are_necessary_conditions() -> None:
    """extract_entities only runs a pattern when its cheap trigger occurs: check on varied texts
    that every match of a pattern implies its trigger (so the shortcut never drops an entity)."""
    from scrm.nlp import entities as ent

    samples = [
        LOST,
        "订单号：TB2024050112345678 ¥5999 明天下午3点半 13812345678",
        "１２月３日 ￥５９９．５ MU５１３７ ３２C 座，rmb200，二百块，一千五百元，3w元",
        "五一 双十一 双11 618 元旦 春节 国庆 中秋 上周五 本月 月底 下下周末 大后天 今晚 15号 3/8",
        "晚上八点 21:30 12：05 下午两点一刻 凌晨3点多 9點",
        "400-820-8820 010-12345678 0755 1234567 +86 138 1234 5678",
        "没有数字的一句话，只有中文和标点！",
    ]
    digit_only = [ent._MOBILE_RE, ent._HOTLINE_RE, ent._ORDER_CTX_RE, ent._LONG_DIGITS_RE]
    digit_only += [ent._LANDLINE_RE, ent._FLIGHT_RE, ent._SEAT_RE]
    guarded = [(p, ent._HAS_DIGIT) for p in digit_only] + [
        (ent._AMOUNT_RE, ent._AMOUNT_TRIGGER),
        (ent._TIME_RE, ent._TIME_TRIGGER),
        (ent._DATE_RE, ent._DATE_TRIGGER),
    ]
    for text in samples:
        for pattern, trigger in guarded:
            for m in pattern.finditer(text):
                if m.group(0).strip():
                    assert trigger.search(m.group(0)), (pattern.pattern[:30], m.group(0))


@given(
    st.text(alphabet="0123456789０１２点时:：元块¥月日号天晚午周期拜一十五秋节庆旦 rmbRMBX9 ", max_size=30)
)
def test_pattern_triggers_hold_on_random_text(text: str) -> None:
    from scrm.nlp import entities as ent

    for pattern, trigger in (
        (ent._AMOUNT_RE, ent._AMOUNT_TRIGGER),
        (ent._TIME_RE, ent._TIME_TRIGGER),
        (ent._DATE_RE, ent._DATE_TRIGGER),
        (ent._FLIGHT_RE, ent._HAS_DIGIT),
        (ent._SEAT_RE, ent._HAS_DIGIT),
        (ent._MOBILE_RE, ent._HAS_DIGIT),
    ):
        for m in pattern.finditer(text):
            if m.group(0).strip():
                assert trigger.search(m.group(0))


def test_catalogue_shortcut_matches_the_character_map() -> None:
    from scrm.nlp.entities import _CHAR_NORM, _norm_with_map

    for text in ("启明Ｘ９ Pro 到了", "e\u0301clair ＮＯＴＥ　１２", "ﬁ ㍿ Ⅻ", LOST):
        assert text.translate(_CHAR_NORM) == _norm_with_map(text)[0]
    assert [e.value for e in extract_entities("我的启明 x９ 屏幕碎了", ["启明X9"])] == ["启明X9"]
