"""The request options' parsers (gridmap.options): whole numbers in ASCII digits within range,
decimal numbers as people type them, and a refusal that names the option for anything else."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap.cleaning import CleanOptions
from gridmap.errors import InvalidInput
from gridmap.options import MAX_WHOLE, clean_options, parse_count, parse_version

# database=None: nothing written into the shared checkout
FUZZ = settings(max_examples=200, deadline=None, database=None)
# Digits str.isdigit() or float() take that are not ASCII: superscripts, Arabic-Indic, full-width, Devanagari.
ODD_DIGITS = "²³¹٠١٢٣٤٥٦٧٨٩０１２３４５６７８９०१२"
ODD_TEXT = st.one_of(
    st.text(),
    st.text(alphabet="0123456789" + ODD_DIGITS + "+-._eE ", max_size=40),
    st.integers(min_value=-10**40, max_value=10**40).map(str),
    st.floats().map(str),
    st.sampled_from(["nan", "inf", "-Infinity", "1e309", "0x10", "1_000", str(10**30), str(MAX_WHOLE + 1)]),
)


@pytest.mark.parametrize("text, expected", [("1", 1), ("42", 42), ("007", 7), (str(MAX_WHOLE), MAX_WHOLE)])
def test_a_version_is_ascii_digits_up_to_nine_of_them(text, expected):
    assert parse_version(text, "version") == expected


@pytest.mark.parametrize("text", ["²", "٣", "３", "१", "0", "-1", "+1", "1e3", "1.0", " 1", "1 ", "", "1_000",
                                  str(10**30), str(MAX_WHOLE + 1), "0x10", "NaN"])
def test_anything_else_is_not_a_version(text):
    with pytest.raises(InvalidInput) as refused:
        parse_version(text, "version")
    assert str(refused.value) == f"version: {text!r} is not a version number; expected 1, 2, 3, …"


def test_version_zero_and_none_only_where_they_mean_none():
    assert [parse_version(t, "base_version", minimum=0) for t in ("0", "none", "NULL", None)] == [0, None, None, None]
    with pytest.raises(InvalidInput) as refused:
        parse_version("٠", "base_version", minimum=0)
    assert str(refused.value) == ("base_version: '٠' is not a version number; expected 0, 1, 2, … "
                                  "(0: the level had none)")


def test_a_count_is_ascii_digits_up_to_its_maximum():
    assert [parse_count(t, "limit", default=50, maximum=100) for t in (None, "0", "100")] == [50, 0, 100]
    for text in ("101", "٣", "３", "-1", str(10**30)):
        with pytest.raises(InvalidInput) as refused:
            parse_count(text, "limit", default=50, maximum=100)
        assert str(refused.value) == f"limit: {text!r} is not valid; expected a whole number from 0 to 100"


@pytest.mark.parametrize("text, expected", [("0", 0.0), ("0.5", 0.5), (".5", 0.5), ("2.", 2.0), ("1e2", 100.0),
                                            ("+3", 3.0), (" 4 ", 4.0)])
def test_a_width_is_a_decimal_number(text, expected):
    assert clean_options({"gap_width_m": text}).gap_width_m == expected


@pytest.mark.parametrize("text", ["١٢", "１２", "1_000", "nan", "inf", "Infinity", "1e309", "-1", "0x10", "1,5", "²"])
def test_a_width_float_would_take_is_refused_unless_people_type_it(text):
    with pytest.raises(InvalidInput) as refused:
        clean_options({"snap_m": text})
    assert str(refused.value) == f"snap_m: {text.strip()!r} is not valid; expected a number >= 0.0"


@FUZZ
@given(ODD_TEXT)
def test_any_text_is_a_version_or_refused(text):
    try:
        version = parse_version(text, "version")
    except InvalidInput as refused:
        assert str(refused).startswith(f"version: {text!r} is not a version number")
        return
    assert text.isascii() and text.isdigit() and version == int(text) and 1 <= version <= MAX_WHOLE


@FUZZ
@given(ODD_TEXT)
def test_any_text_is_a_count_or_refused(text):
    try:
        count = parse_count(text, "offset", default=0)
    except InvalidInput:
        return
    assert text.isascii() and text.isdigit() and count == int(text) and 0 <= count <= MAX_WHOLE


@FUZZ
@given(ODD_TEXT)
def test_any_text_is_a_width_or_refused(text):
    try:
        options = clean_options({"gap_width_m": text})
    except InvalidInput as refused:
        assert str(refused) == f"gap_width_m: {text.strip()!r} is not valid; expected a number >= 0.0"
        return
    assert isinstance(options, CleanOptions) and math.isfinite(options.gap_width_m) and options.gap_width_m >= 0
    assert options.gap_width_m == (float(text) if text.strip() else CleanOptions().gap_width_m)
    assert text.strip().isascii()
