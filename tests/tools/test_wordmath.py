"""Arithmetic in words: recognised exactly, computed by the calculator, never misfired."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from tools.calculator import evaluate, format_number
from tools.wordmath import normalise, parse_arithmetic

# question -> the value, computed here independently of the parser
WORDED = [
    ("How much is 48 times 52?", Fraction(48 * 52)),
    ("7 to the power of 13", Fraction(7**13)),
    ("What is 2^64 minus 1?", Fraction(2**64 - 1)),
    ("3/7 plus 2/5", Fraction(3, 7) + Fraction(2, 5)),
    ("What is 15% of 80?", Fraction(12)),
    ("what is 12 divided by 5", Fraction(12, 5)),
    ("What's forty-eight times fifty-two?", Fraction(2496)),
    ("What is nineteen times twenty-three?", Fraction(437)),
    ("Divide 22 by 7.", Fraction(22, 7)),
    ("Compute 2 ** 40 exactly.", Fraction(2**40)),
    ("123456789 * 987654321", Fraction(123456789 * 987654321)),
    ("What is 10 factorial?", Fraction(math.factorial(10))),
    ("Subtract 347 from 1000.", Fraction(653)),
    ("What is the sum of 3 and 4?", Fraction(7)),
    ("what is 5 squared", Fraction(25)),
    ("How much is 1,000,000 divided by 8?", Fraction(125000)),
    ("one hundred and twenty three minus three", Fraction(120)),
    ("What is 3x4?", Fraction(12)),
    ("Calculate (2 + 3) * 4, please", Fraction(20)),
    ("What is 17 mod 5?", Fraction(2)),
    ("What is 2 raised to the power of 10?", Fraction(1024)),
]


@pytest.mark.parametrize(("question", "value"), WORDED)
def test_worded_arithmetic_parses_to_an_expression_with_the_right_value(
    question: str, value: Fraction
) -> None:
    expression = parse_arithmetic(question)
    assert expression is not None, question
    assert evaluate(expression) == value


def test_two_to_the_64_minus_one_is_exact() -> None:
    expression = parse_arithmetic("What is 2^64 minus 1?")
    assert expression is not None
    assert format_number(evaluate(expression)) == "18446744073709551615"


def test_square_root_of_two_is_the_float_square_root() -> None:
    expression = parse_arithmetic("What is the square root of 2?")
    assert expression == "sqrt(2)"
    assert evaluate(expression) == math.sqrt(2)


@pytest.mark.parametrize(
    "question",
    [
        "What is Swarm?",
        "who wrote 1984?",
        "top 10 tips",
        "Name three colours.",
        "How many jobs are in the market?",
        "show job 0",
        "What happened in 1990?",
        "Is 7 a prime number?",
        "Use Python to print the sum of 1 to 100.",
        "Stake 1 ETH.",
        "What is the balance of 0x000000000000000000000000000000000000dEaD?",
        "What is 2024-01-05?",  # a date, not a subtraction (leading zeros)
        "five and six",
        "I have 3 apples and eat 1",
        "Write a story about 2 dragons times 3 castles",
        "",
        "?" * 1000,
    ],
)
def test_questions_that_are_not_arithmetic_are_not_parsed(question: str) -> None:
    assert parse_arithmetic(question) is None


def test_number_words_become_digits_only_as_whole_numbers() -> None:
    assert normalise("twenty one") == "21"
    assert normalise("five six") == "5 6"  # two numbers, not eleven
    assert normalise("someone said ten") == "someone said 10"
    assert normalise("two thousand and five") == "2005"
