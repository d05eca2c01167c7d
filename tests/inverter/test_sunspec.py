"""The SunSpec codec: layouts from pysunspec2's definitions, typed points, scale factors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.inverter import LocalInverterError, SunSpecError
from station.inverter.sunspec import (
    BASE_ADDRESSES,
    SUNS_MARKER,
    PointDef,
    PointType,
    decode_block,
    decode_point,
    encode_point,
    load_model,
    model_from_definition,
    scale,
    to_raw,
)

# (type, size, smallest, largest, sentinel) for the integer types the station reads and writes
INTEGERS = [
    (PointType.INT16, 1, -0x7FFF, 0x7FFF, -0x8000),
    (PointType.UINT16, 1, 0, 0xFFFE, 0xFFFF),
    (PointType.ENUM16, 1, 0, 0xFFFE, 0xFFFF),
    (PointType.BITFIELD16, 1, 0, 0xFFFE, 0xFFFF),
    (PointType.INT32, 2, -0x7FFFFFFF, 0x7FFFFFFF, -0x80000000),
    (PointType.UINT32, 2, 0, 0xFFFFFFFE, 0xFFFFFFFF),
    (PointType.ENUM32, 2, 0, 0xFFFFFFFE, 0xFFFFFFFF),
    (PointType.BITFIELD32, 2, 0, 0xFFFFFFFE, 0xFFFFFFFF),
    (PointType.ACC32, 2, 1, 0xFFFFFFFF, 0),
    (PointType.UINT64, 4, 0, 0xFFFFFFFFFFFFFFFE, 0xFFFFFFFFFFFFFFFF),
    (PointType.ACC64, 4, 1, 0xFFFFFFFFFFFFFFFF, 0),
    (PointType.INT64, 4, -0x7FFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF, -0x8000000000000000),
]


def point(kind: PointType, size: int, sf: str | int | None = None) -> PointDef:
    return PointDef(name="P", type=kind, offset=2, size=size, sf=sf, writable=True)


def test_layouts_come_from_the_sunspec_definitions() -> None:
    wset = load_model(704).point("WSet")
    assert (wset.offset, wset.size, wset.type, wset.sf, wset.writable) == (
        24,
        2,
        PointType.INT32,
        "WSet_SF",
        True,
    )
    assert load_model(704).point("WSetRvrtTms").offset == 31
    assert load_model(704).point("WSetMod").symbols == {"W_MAX_PCT": 0, "WATTS": 1}
    assert load_model(701).point("TotWhAbs").type is PointType.UINT64
    assert load_model(715).point("ControllerHb").offset == 5
    assert load_model(124).point("InWRte").sf == "InOutWRte_SF"
    assert load_model(1).length == 66
    # nested fixed groups of 704 are flattened with their group's name
    assert load_model(704).point("PFWInj.PF").offset == 59
    assert SUNS_MARKER == (0x5375, 0x6E53)
    assert set(BASE_ADDRESSES) == {0, 40000, 50000}


def test_unknown_model_and_point_are_local_errors() -> None:
    with pytest.raises(LocalInverterError, match="model 9999"):
        load_model(9999)
    with pytest.raises(LocalInverterError, match="no point 'Nope'"):
        load_model(704).point("Nope")
    with pytest.raises(LocalInverterError):
        model_from_definition({"id": 5})


@pytest.mark.parametrize(("kind", "size", "low", "high", "sentinel"), INTEGERS)
def test_integer_sentinels_and_ranges(
    kind: PointType, size: int, low: int, high: int, sentinel: int
) -> None:
    p = point(kind, size)
    assert decode_point(p, encode_point(p, None)) is None
    assert decode_point(p, encode_point(p, low)) == low
    assert decode_point(p, encode_point(p, high)) == high
    with pytest.raises(LocalInverterError):
        encode_point(p, sentinel)


@given(st.sampled_from(INTEGERS), st.data())
def test_integer_round_trip(
    case: tuple[PointType, int, int, int, int], data: st.DataObject
) -> None:
    kind, size, low, high, _ = case
    value = data.draw(st.integers(low, high))
    words = encode_point(point(kind, size), value)
    assert len(words) == size and all(0 <= w <= 0xFFFF for w in words)
    assert decode_point(point(kind, size), words) == value


def test_big_endian_words() -> None:
    # SunSpec: most significant word first
    assert encode_point(point(PointType.INT32, 2), -2) == [0xFFFF, 0xFFFE]
    assert encode_point(point(PointType.UINT32, 2), 0x12345678) == [0x1234, 0x5678]
    assert decode_point(point(PointType.INT16, 1), [0xFFF6]) == -10


@given(st.text(st.characters(min_codepoint=1, max_codepoint=0x7F), max_size=32))
def test_string_round_trip(text: str) -> None:
    p = point(PointType.STRING, 16)
    words = encode_point(p, text)
    assert len(words) == 16
    assert decode_point(p, words) == (text or None)


def test_string_too_long_and_bad_utf8() -> None:
    p = point(PointType.STRING, 2)
    with pytest.raises(LocalInverterError, match="longer"):
        encode_point(p, "abcde")
    with pytest.raises(SunSpecError, match="UTF-8"):
        decode_point(p, [0xFFFE, 0])


@given(st.floats(allow_nan=False, width=32))
def test_float32_round_trip(value: float) -> None:
    p = point(PointType.FLOAT32, 2)
    assert decode_point(p, encode_point(p, value)) == value
    assert decode_point(p, encode_point(p, None)) is None


def test_scale_factor_range_and_sentinel() -> None:
    sf = point(PointType.SUNSSF, 1)
    assert decode_point(sf, encode_point(sf, -3)) == -3
    assert decode_point(sf, [0x8000]) is None
    with pytest.raises(SunSpecError, match=r"outside -10\.\.10"):
        decode_point(sf, [11])
    with pytest.raises(LocalInverterError):
        encode_point(sf, 11)


def test_wrong_number_of_words_is_refused() -> None:
    with pytest.raises(LocalInverterError, match="needs 2 registers"):
        decode_point(point(PointType.INT32, 2), [1])
    with pytest.raises(LocalInverterError):
        decode_point(point(PointType.UINT16, 1), [0x10000])


def test_pad_and_type_errors() -> None:
    assert decode_point(point(PointType.PAD, 1), [0x1234]) is None
    with pytest.raises(LocalInverterError):
        encode_point(point(PointType.INT16, 1), "1")
    with pytest.raises(LocalInverterError):
        encode_point(point(PointType.INT16, 1), True)


@given(
    sf=st.integers(-3, 3),
    watts=st.floats(-100_000, 100_000, allow_nan=False),
)
def test_to_raw_and_scale_round_trip_within_resolution(sf: int, watts: float) -> None:
    model = load_model(704)
    values = {"WSet_SF": sf}
    raw = to_raw(model, values, "WSet", watts)
    back = scale(model, {**values, "WSet": raw}, "WSet")
    assert back is not None
    assert math.isclose(back, watts, abs_tol=10.0**sf / 2 + 1e-6)


def test_to_raw_refusals() -> None:
    model = load_model(704)
    with pytest.raises(LocalInverterError, match="not implemented"):
        to_raw(model, {"WSet_SF": None}, "WSet", 10.0)
    with pytest.raises(LocalInverterError, match="finite"):
        to_raw(model, {"WSet_SF": 0}, "WSet", math.inf)
    with pytest.raises(LocalInverterError, match="outside"):
        to_raw(load_model(124), {"InOutWRte_SF": -2}, "InWRte", 400.0)  # 40000 > int16


def test_scale_of_unimplemented_is_none() -> None:
    model = load_model(701)
    assert scale(model, {"W": None, "W_SF": 0}, "W") is None
    assert scale(model, {"W": 5, "W_SF": None}, "W") is None
    assert scale(model, {"W": 5, "W_SF": 2}, "W") == 500.0
    assert scale(model, {"Hz": 50_012, "Hz_SF": -3}, "Hz") == pytest.approx(50.012)


def test_decode_block_checks_the_model_id_and_covers_a_prefix() -> None:
    model = load_model(715)
    words = [715, 7, 0, 0, 9, 0, 42, 0, 1]
    values = decode_block(model, words)
    assert values["ControllerHb"] == 42 and values["DERHb"] == 9 and values["OpCtl"] == 1
    assert "OpCtl" not in decode_block(model, words[:8])
    with pytest.raises(SunSpecError, match="expected model 715"):
        decode_block(model, [704, *words[1:]])
