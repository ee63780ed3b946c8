"""Ether amounts are parsed and printed exactly, by one parser the CLI and the tools share."""

from __future__ import annotations

from decimal import Decimal, getcontext
from fractions import Fraction

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.cli.common import parse_ether as cli_parse_ether
from chain.units import MAX_WEI, WEI_PER_ETHER, AmountError, format_ether, parse_ether
from tools.base import ToolError
from tools.chain_tool import parse_ether as tool_parse_ether

# 29 significant digits: one more than decimal's default context keeps.
LONG = "12345678901.123456789012345678"
LONG_WEI = 12345678901_123456789012345678


def test_a_29_digit_amount_keeps_every_wei() -> None:
    assert getcontext().prec == 28  # the default context that used to round this amount
    assert int(Decimal(LONG) * Decimal(10**18)) != LONG_WEI  # what rounding did
    assert parse_ether(LONG) == LONG_WEI
    assert cli_parse_ether(LONG) == LONG_WEI  # the CLI's `stake` / `job post` path
    assert format_ether(parse_ether(LONG)) == f"{LONG} ETH"


def test_the_tool_and_the_cli_agree_with_an_independent_oracle() -> None:
    for text in ("1.5", "0.000000000000000001", "2.500000000000000000000", "42", ".5", "7."):
        oracle = Fraction(text) * WEI_PER_ETHER  # exact rational arithmetic
        assert oracle.denominator == 1
        assert parse_ether(text) == cli_parse_ether(text) == tool_parse_ether(text) == oracle


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0.0000000000000000001", "less than 1 wei"),
        ("1e-999999999", "less than 1 wei"),  # decided without computing 10**999999999
        ("1e999999999", "above the limit"),
        ("1.1234567890123456789", "more than 18 decimal places"),
        ("-1", "negative amounts are not accepted"),
        ("+1", "drop the sign"),
        ("1e", "an exponent"),
        ("1,000", "separators"),
        ("1 000", "separators"),
        ("1.2.3", "more than one decimal point"),
        ("\u0661", "digits 0-9"),  # an Arabic-Indic one: int() would accept it
        ("NaN", "finite"),
        ("-Infinity", "finite"),
        ("0x10", "only the digits"),
        (".", "only the digits"),
        ("", "empty amount"),
        ("   ", "empty amount"),
        ("0", "zero"),
        ("0.000", "zero"),
        ("1" * 101, "too long"),
        (str(MAX_WEI // WEI_PER_ETHER + 1), "above the limit"),
    ],
)
def test_bad_amounts_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(AmountError, match=why):
        parse_ether(text)
    with pytest.raises(click.BadParameter, match=why):
        cli_parse_ether(text)
    with pytest.raises(ToolError):
        tool_parse_ether(text)


def test_exponent_notation_is_exact_too() -> None:
    assert parse_ether("1e18") == 10**36
    assert parse_ether("1E-3") == 10**15
    assert parse_ether("25e-18") == 25
    assert parse_ether(f"{LONG}e0") == LONG_WEI
    assert parse_ether("0.000123456789012345678e3") == 123456789012345678
    with pytest.raises(AmountError, match="more than 18 decimal places"):
        parse_ether("1.5e-18")  # 1.5 wei


def test_whitespace_around_is_fine_and_huge_amounts_are_exact() -> None:
    assert parse_ether("  \t3.25\n") == 3_250_000_000_000_000_000
    huge = "115792089237316195423570985008687907853269984665640564039457.584007913129639935"
    assert parse_ether(huge) == MAX_WEI  # 2**256 - 1 wei, the largest uint256
    assert format_ether(MAX_WEI, unit=False) == huge
    assert parse_ether("0", positive=False) == 0
    with pytest.raises(AmountError, match="above the limit of 1 ETH"):
        parse_ether("1.000000000000000001", max_wei=WEI_PER_ETHER)


def test_the_tool_keeps_its_node_limit() -> None:
    assert tool_parse_ether("10", max_ether=Decimal(10)) == 10 * WEI_PER_ETHER
    with pytest.raises(ToolError, match="above this node's limit of 10 ETH"):
        tool_parse_ether("10.000000000000000001", max_ether=Decimal(10))


def test_format_is_exact_never_a_float() -> None:
    assert format_ether(1) == "0.000000000000000001 ETH"
    assert format_ether(15 * 10**17) == "1.5 ETH"
    assert format_ether(-15 * 10**17) == "-1.5 ETH"
    assert format_ether(0) == "0 ETH"
    assert format_ether(-123_456_789_000_000, places=6) == "-0.000123 ETH"  # cut, not rounded
    assert format_ether(15 * 10**17 + 1, places=6) == "1.5 ETH"
    assert format_ether(10**12, places=6) == "0.000001 ETH"
    assert format_ether(10**12 - 1, places=6) == "0 ETH"
    # a float would print 1.2345678901234568e+28 here
    assert format_ether(LONG_WEI * 10**18) == "12345678901123456789012345678 ETH"


@given(st.integers(min_value=1, max_value=MAX_WEI))
def test_format_then_parse_is_the_identity(wei: int) -> None:
    assert parse_ether(format_ether(wei, unit=False)) == wei
