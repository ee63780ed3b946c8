"""Ether amounts, exactly: decimal text to `Wei` and back, never through a float.

    parse_ether("1.5")        -> Wei(1500000000000000000)
    format_ether(Wei(15 * 10**17))      -> "1.5 ETH"
    format_ether(Wei(1), unit=False)    -> "0.000000000000000001"

The accepted text is decimal notation: ASCII digits with at most one point, an
optional exponent ("1.5e3"), and optional surrounding whitespace. Everything else is
an `AmountError` (a `ChainError`) whose message says what is wrong: signs, NaN and
infinities, separators, non-ASCII digits, a fraction of a wei, zero where a positive
amount is required, and more than fits a uint256 of wei. The digits are converted
with integer arithmetic only (exponents are bounded first, so "1e999999999" costs
nothing), so no precision setting can round them: `decimal`'s default context keeps
28 digits, and "12345678901.123456789012345678" has 29.
"""

from __future__ import annotations

import re

from chain.errors import ChainError
from chain.records import Wei

__all__ = [
    "MAX_WEI",
    "WEI_PER_ETHER",
    "AmountError",
    "AmountTooLarge",
    "format_ether",
    "parse_ether",
]

WEI_PER_ETHER = 10**18
DECIMALS = 18
MAX_WEI = 2**256 - 1  # the largest amount a contract can hold or be sent
MAX_AMOUNT_CHARS = 100  # longer text is refused before any digit is converted

_NUMBER = re.compile(r"([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")
_EXPONENT_BOUND = 2 * MAX_AMOUNT_CHARS  # past it, any nonzero amount is < 1 wei or > MAX_WEI


class AmountError(ChainError, ValueError):
    """Text that is not an exact, in-range amount of ether; the message says why."""


class AmountTooLarge(AmountError):
    """An exact amount above the allowed maximum."""


def parse_ether(text: str, *, positive: bool = True, max_wei: int = MAX_WEI) -> Wei:
    """The exact number of wei in `text`, a decimal amount of ether like "0.25".

    `positive` refuses zero; `max_wei` is an upper bound (inclusive) in wei.
    """
    cleaned = text.strip()
    shown = repr(cleaned[:40] + ("..." if len(cleaned) > 40 else ""))
    if not cleaned:
        raise AmountError("empty amount: write a decimal number of ether, e.g. 0.5")
    if len(cleaned) > MAX_AMOUNT_CHARS:
        raise AmountError(f"amount {shown} is too long (at most {MAX_AMOUNT_CHARS} characters)")
    match = _NUMBER.fullmatch(cleaned)
    if match is None or not (match.group(1) or match.group(2)):
        raise AmountError(f"amount {shown} is not a decimal number of ether: {_why(cleaned)}")
    whole, frac, exp_text = match.group(1), match.group(2) or "", match.group(3) or "0"
    mantissa = int(whole + frac or "0")  # the digits without the point
    exponent = int(exp_text) - len(frac) + DECIMALS  # wei = mantissa * 10**exponent
    if mantissa and int(exp_text) > _EXPONENT_BOUND:
        wei: int | None = None  # too large to be worth computing
    elif mantissa and int(exp_text) < -_EXPONENT_BOUND:
        raise AmountError(f"amount {shown} is less than 1 wei (10^-18 ether)")
    elif exponent >= 0:
        wei = mantissa * 10**exponent
    else:
        wei, rest = divmod(mantissa, 10**-exponent)
        if rest:
            if wei == 0:
                raise AmountError(f"amount {shown} is less than 1 wei (10^-18 ether)")
            raise AmountError(
                f"amount {shown} has more than {DECIMALS} decimal places "
                "(1 wei is 0.000000000000000001 ether)"
            )
    if wei == 0 and positive:
        raise AmountError(f"amount {shown} is zero; it must be positive")
    if wei is None or wei > max_wei:
        raise AmountTooLarge(f"amount {shown} ETH is above the limit of {format_ether(max_wei)}")
    return Wei(wei)


def _why(text: str) -> str:
    bare = text.lstrip("+-").lower()
    if bare in ("nan", "snan", "inf", "infinity"):
        return "it must be a finite number"
    if text[0] == "-":
        return "it must be positive; negative amounts are not accepted"
    if text[0] == "+":
        return "drop the sign"
    if any(c.isdigit() and not c.isascii() for c in text):
        return "use the digits 0-9"
    if any(c in ",_' " for c in text):
        return "no digit separators or spaces inside the number"
    if text.count(".") > 1:
        return "more than one decimal point"
    return "only the digits 0-9, one decimal point and an exponent (1.5e3) are accepted"


def format_ether(wei: int, *, unit: bool = True, places: int = DECIMALS) -> str:
    """`wei` as exact decimal ether: 1500000000000000000 -> "1.5 ETH" ("1.5" without unit).

    `places` below 18 cuts the decimals after that many (toward zero), for summaries
    where gas makes the last digits noise.
    """
    sign = "-" if wei < 0 else ""
    whole, frac = divmod(abs(wei), WEI_PER_ETHER)
    decimals = str(frac).rjust(DECIMALS, "0")[:places].rstrip("0")
    number = f"{sign}{whole}{'.' + decimals if decimals else ''}"
    return f"{number} ETH" if unit else number
