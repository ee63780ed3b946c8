"""The calculator: exact answers, oracle checks, refusals and DoS bounds."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools import ToolContext, ToolError, evaluate, make_calculator
from tools.calculator import MAX_DEPTH, format_number

OWNER = ToolContext(local_owner=True)


@pytest.mark.parametrize(
    ("expression", "shown"),
    [
        ("123456789 * 987654321", "121932631112635269"),
        ("0.1 + 0.2", "0.3"),
        ("1/3", "1/3 ≈ 0.333333333333333333333333333333"),
        ("2**100", "1267650600228229401496703205376"),
        ("2**-3", "0.125"),
        ("-7 // 2", "-4"),
        ("7 % -3", "-2"),
        ("(1 + 2) * -3", "-9"),
        ("1_000.5 * 2", "2001"),
        ("1e-3", "0.001"),
        ("sqrt(16/9)", "4/3 ≈ 1.33333333333333333333333333333"),
        ("factorial(20)", "2432902008176640000"),
        ("gcd(12, 18)", "6"),
        ("min(3, 1/2, 2)", "0.5"),
        ("max(3, 1/2, 2)", "3"),
        ("abs(-2.5)", "2.5"),
        ("floor(-2.5) + ceil(2.1)", "0"),
        ("round(7/2)", "4"),
        ("round(2.675, 2)", "2.68"),
        ("-0.5", "-0.5"),
    ],
)
def test_exact_results(expression: str, shown: str) -> None:
    assert format_number(evaluate(expression)) == shown


def test_approximate_functions() -> None:
    assert evaluate("sqrt(2)") == pytest.approx(2**0.5)
    assert evaluate("sin(pi / 2)") == pytest.approx(1.0)
    assert evaluate("log(8, 2)") == pytest.approx(3.0)
    assert evaluate("log(e)") == pytest.approx(1.0)
    assert evaluate("exp(0)") == 1.0
    assert evaluate("log(10**1000)") == pytest.approx(1000 * 2.302585092994046)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "function '__import__' is not allowed"),
        ("open('x')", "function 'open' is not allowed"),
        ("(1).real", "Attribute is not allowed"),
        ("[x for x in [1]]", "ListComp is not allowed"),
        ("'a' * 3", "only numbers are allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("x + 1", "unknown name 'x'"),
        ("1 if 1 else 2", "IfExp is not allowed"),
        ("2 ^ 3", "write **"),
        ("1 << 3", "operator LShift is not supported"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("0 ** -1", "zero cannot be raised"),
        ("(-8) ** (1/3)", "not a real number"),
        ("sqrt(-1)", "sqrt of a negative"),
        ("log(0)", "not positive"),
        ("1j", "only numbers are allowed"),
        ("True + 1", "only numbers are allowed"),
        ("sqrt(1, 2)", "wrong number of arguments for sqrt()"),
        ("round(2, ndigits=1)", "keyword arguments"),
        ("1 +", "not a valid expression"),
        ("", "empty expression"),
        ("9**9**9", "too large"),
        ("2**100000", "too large"),
        ("factorial(100000)", "factorial takes an integer from 0 to"),
        ("factorial(2.5)", "factorial needs an integer"),
        ("1e100000000", "too large"),
        ("exp(100000)", "cannot compute"),
        ("10.0**400 * 10.0**400 * sin(1)", "cannot compute"),
        ("1 + " * 3000 + "1", "too long"),
        ("-" * (MAX_DEPTH + 5) + "1", "nested too deeply"),
    ],
)
def test_refusals_are_clear(expression: str, message: str) -> None:
    with pytest.raises(ToolError, match=None) as caught:
        evaluate(expression)
    assert message in str(caught.value)


def test_repeated_squaring_is_bounded() -> None:
    with pytest.raises(ToolError, match="bits"):
        evaluate("((((2**100)**100)**100)**100)")


fractions = st.fractions(max_denominator=10**6).filter(lambda f: abs(f) < 10**12)


@given(a=fractions, b=fractions)
def test_matches_fraction_oracle(a: Fraction, b: Fraction) -> None:
    left, right = f"({a.numerator}/{a.denominator})", f"({b.numerator}/{b.denominator})"
    assert evaluate(f"{left} + {right} * {left}") == a + b * a
    assert evaluate(f"{left} - {right}") == a - b
    if b:
        assert evaluate(f"{left} / {right}") == a / b
        assert evaluate(f"{left} // {right}") == a // b
        assert evaluate(f"{left} % {right}") == a % b


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-1e9, max_value=1e9))
def test_decimal_literals_are_exact(value: object) -> None:
    text = str(value)
    assert evaluate(f"({text}) * 3") == Fraction(text) * 3


@pytest.mark.asyncio
async def test_tool_output_and_data() -> None:
    calculator = make_calculator()
    assert calculator.annotations.read_only
    exact = await calculator({"expression": "1/3 + 1/6"}, OWNER)
    assert exact.ok
    assert exact.output == "0.5"
    assert exact.data == {"exact": True, "numerator": "1", "denominator": "2"}
    approx = await calculator({"expression": "sqrt(2)"}, OWNER)
    assert approx.output == "1.4142135623730951 (approximate)"
    assert approx.data == {"exact": False}
    refused = await calculator({"expression": "import os"}, OWNER)
    assert not refused.ok
    assert "not a valid expression" in refused.error
