"""Arithmetic written the way people ask it, turned into a calculator expression.

`parse_arithmetic("How much is 48 times 52?")` gives `"48 * 52"`; a question that is
not arithmetic gives None. The parser is deliberately strict, because a false
positive answers a real question with a number:

1. The text is normalised: number words become digits ("forty-eight" -> 48), and
   operator phrases become symbols ("to the power of" -> `**`, "15% of" ->
   `(15/100)*`, "the square root of 2" -> `sqrt(2)`, "divide 22 by 7" -> `22 / 7`).
2. The longest run of numbers, operators, parentheses and known functions is the
   expression. It must hold an operator or a function, and parse as Python.
3. Every word outside that run must be filler ("what", "is", "how much", "compute",
   "please", ...). "Who wrote 1984?" or "top 10 tips" therefore never match.

The expression is evaluated by `tools.calculator.evaluate`, which stays the only
place where numbers are computed.
"""

from __future__ import annotations

import ast
import re

__all__ = ["parse_arithmetic"]

MAX_QUESTION_CHARS = 500

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}

# Words that may surround an arithmetic question without changing what it asks.
FILLER = frozenset(
    {
        "what", "whats", "is", "are", "was", "be", "how", "much", "many", "calculate",
        "compute", "evaluate", "work", "out", "solve", "please", "tell", "me", "us", "the",
        "of", "equal", "equals", "to", "can", "could", "you", "would", "will", "exactly",
        "give", "value", "result", "answer", "for", "do", "does", "get", "i", "need", "know",
        "find", "quickly", "precisely", "and", "number", "=", "?", ".", "!", ",", ":", "hey",
        "hi", "lets", "let's",
    }
)  # fmt: skip

_NUM = r"\d+(?:\.\d+)?"
_OPERAND = rf"(?:{_NUM}|\([^()]*\))"

# Phrase rewrites, applied in order to the lower-cased text with number words as digits.
_REWRITES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in [
        (r"(?<=\d),(?=\d{3}\b)", ""),  # 1,000,000
        (r"[\u00d7\u2715]", " * "),  # multiplication signs
        (r"\u00f7", " / "),  # division sign
        (r"[\u2212\u2013]", " - "),  # minus sign, en dash
        (r"\^", " ** "),
        (rf"(?:the )?(?:positive )?square root of ({_OPERAND})", r" sqrt(\1) "),
        (rf"\bsqrt (?:of )?({_OPERAND})", r" sqrt(\1) "),
        (rf"(?:the )?cube root of ({_OPERAND})", r" (\1) ** (1/3) "),
        (rf"(?:the )?factorial of ({_OPERAND})", r" factorial(\1) "),
        (rf"({_OPERAND}) factorial\b", r" factorial(\1) "),
        (rf"(?<![\d.])({_NUM}) ?(?:%|percent|per cent) of\b", r" (\1/100) * "),
        (rf"\bdivide ({_OPERAND}) by ({_OPERAND})", r" \1 / \2 "),
        (rf"\bmultiply ({_OPERAND}) (?:by|and|with) ({_OPERAND})", r" \1 * \2 "),
        (rf"\badd ({_OPERAND}) (?:and|to) ({_OPERAND})", r" \1 + \2 "),
        (rf"\bsubtract ({_OPERAND}) from ({_OPERAND})", r" \2 - \1 "),
        (rf"(?:the )?sum of ({_OPERAND}) and ({_OPERAND})", r" \1 + \2 "),
        (rf"(?:the )?product of ({_OPERAND}) and ({_OPERAND})", r" \1 * \2 "),
        (rf"(?:the )?difference between ({_OPERAND}) and ({_OPERAND})", r" \1 - \2 "),
        (rf"(?:the )?quotient of ({_OPERAND}) (?:and|by) ({_OPERAND})", r" \1 / \2 "),
        (rf"(?:the )?remainder of ({_OPERAND}) (?:divided )?by ({_OPERAND})", r" \1 % \2 "),
        (r"\b(?:raised )?to the power of\b|\braised to\b|\bto the power\b", " ** "),
        (r"\bsquared\b", " ** 2 "),
        (r"\bcubed\b", " ** 3 "),
        (r"\bmultiplied by\b|\btimes\b", " * "),
        (r"\bdivided by\b|\bover\b", " / "),
        (r"\bplus\b|\badded to\b", " + "),
        (r"\bminus\b|\btake away\b", " - "),
        (r"\bmodulo\b|\bmod\b", " % "),
        (r"(?<=\d) ?x ?(?=\d)", " * "),  # 3x4, 3 x 4
    ]
]

_TOKEN = re.compile(r"\d+(?:\.\d+)?|\*\*|[-+*/%()]|sqrt|factorial|[a-z']+|[=?.!,:]")
_MATH_TOKEN = re.compile(r"\d+(?:\.\d+)?|\*\*|[-+*/%()]|sqrt|factorial")
_OPERATORS = {"+", "-", "*", "/", "%", "**", "sqrt", "factorial"}


def _number_words(text: str) -> str:
    """Spelled-out whole numbers ("forty-eight", "two thousand and five") as digits."""
    words = re.split(r"([a-z]+)", text)
    out: list[str] = []
    total = current = 0
    in_number = False
    pending: list[str] = []  # separators and "and" seen inside a number

    def flush() -> None:
        nonlocal total, current, in_number
        if in_number:
            out.append(str(total + current))
        total = current = 0
        in_number = False

    for word in words:
        value = _UNITS.get(word, _TENS.get(word))
        # "five six", "twenty thirty": a small number after another starts a new number,
        # except a unit after a ten ("twenty one")
        starts_new = value is not None and in_number and current % 100
        if starts_new and not (current % 10 == 0 and value is not None and value < 10):
            flush()
            out.extend(pending)
            pending = []
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred" and in_number:
            current = max(current, 1) * 100
        elif word in _SCALES and in_number:
            total += max(current, 1) * _SCALES[word]
            current = 0
        elif in_number and (word.strip() in ("", "-") or word == "and"):
            pending.append(word)
            continue
        else:
            flush()
            out.extend(pending)
            pending = []
            out.append(word)
            continue
        in_number = True
        pending = []
    flush()
    out.extend(pending)
    return "".join(out)


def normalise(text: str) -> str:
    """`text` lower-cased, number words as digits and operator phrases as symbols."""
    lowered = text.lower().replace("what's", "what is").replace("\u2019", "'")
    lowered = _number_words(lowered)
    for pattern, replacement in _REWRITES:
        lowered = pattern.sub(replacement, lowered)
    return lowered


def parse_arithmetic(text: str) -> str | None:
    """The calculator expression `text` asks for, or None when it is not arithmetic."""
    if len(text) > MAX_QUESTION_CHARS:
        return None
    tokens = _TOKEN.findall(normalise(text))
    best: tuple[int, int] = (0, 0)
    start = None
    for i, token in enumerate([*tokens, ""]):
        if token and _MATH_TOKEN.fullmatch(token):
            start = i if start is None else start
            continue
        if start is not None and i - start > best[1] - best[0]:
            best = (start, i)
        start = None
    span = tokens[best[0] : best[1]]
    if not span or not _OPERATORS & set(span):
        return None
    leftover = tokens[: best[0]] + tokens[best[1] :]
    if any(word not in FILLER for word in leftover):
        return None
    expression = _join(span)
    try:
        ast.parse(expression, mode="eval")
    except SyntaxError:
        return None
    return expression


def _join(tokens: list[str]) -> str:
    """Tokens as a readable expression: `2 ** 64 - 1`, `sqrt(2)`, `(15/100) * 80`."""
    text = ""
    for token in tokens:
        tight = token in ("(", ")") or text.endswith(("(", "sqrt", "factorial")) or not text
        if token == ")" or tight:
            text += token
        else:
            text += " " + token
    return re.sub(r"\( ", "(", text).strip()
