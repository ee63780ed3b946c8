"""The `calculator` tool: exact arithmetic over a small expression language.

The expression is parsed with `ast` and walked node by node; nothing is ever
`eval`ed. Numbers are exact rationals (`Fraction`): big integers stay exact and
`0.1 + 0.2` is exactly `0.3`. Functions without exact answers (`sin`, `log`, a
non-square `sqrt`, ...) and the constants `pi` and `e` give floats, and any float
makes the result approximate, which the output says.

Bounds (an expression is untrusted input): its length, its syntax-tree depth, the
bit length of every intermediate value (so `9**9**9` is refused, not computed) and
the factorial argument.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from decimal import Context, Decimal
from fractions import Fraction

from tools.base import ToolError, ToolResult
from tools.decorator import FunctionTool, tool

MAX_EXPRESSION_CHARS = 2_000
MAX_DEPTH = 60  # syntax-tree nesting
MAX_BITS = 12_000  # numerator or denominator of any value (~3,600 decimal digits)
MAX_FACTORIAL = 1_000
APPROX_DIGITS = 30  # significant digits in a decimal approximation

Number = Fraction | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _check_size(value: Number) -> Number:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ToolError("the result is not a finite number")
        return value
    if max(value.numerator.bit_length(), value.denominator.bit_length()) > MAX_BITS:
        raise ToolError(f"a value exceeds {MAX_BITS} bits; refusing to compute it")
    return value


def _integer(value: Number, what: str) -> int:
    if isinstance(value, Fraction) and value.denominator == 1:
        return value.numerator
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ToolError(f"{what} needs an integer, got {format_number(value)}")


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, Fraction) and isinstance(exponent, Fraction) and exponent.denominator == 1:
        size = max(base.numerator.bit_length(), base.denominator.bit_length())
        if size > 1 and abs(exponent.numerator) * (size - 1) > MAX_BITS:
            raise ToolError(f"the power is too large (over {MAX_BITS} bits)")
        if base == 0 and exponent < 0:
            raise ToolError("zero cannot be raised to a negative power")
        power: Fraction = base**exponent.numerator
        return power
    if float(base) < 0:
        raise ToolError("a negative number to a fractional power is not a real number")
    return math.pow(float(base), float(exponent))


def _sqrt(x: Number) -> Number:
    if x < 0:
        raise ToolError("sqrt of a negative number")
    if isinstance(x, Fraction):
        num, den = math.isqrt(x.numerator), math.isqrt(x.denominator)
        if num * num == x.numerator and den * den == x.denominator:
            return Fraction(num, den)
    return math.sqrt(x)


def _log(x: Number, base: Number | None = None) -> Number:
    def ln(v: Number) -> float:
        if v <= 0:
            raise ToolError("log of a number that is not positive")
        if isinstance(v, Fraction):  # big integers: log each part, no float overflow
            return math.log(v.numerator) - math.log(v.denominator)
        return math.log(v)

    if base is None:
        return ln(x)
    if base == 1:
        raise ToolError("log base 1 is undefined")
    return ln(x) / ln(base)


def _factorial(x: Number) -> Number:
    n = _integer(x, "factorial")
    if not 0 <= n <= MAX_FACTORIAL:
        raise ToolError(f"factorial takes an integer from 0 to {MAX_FACTORIAL}")
    return Fraction(math.factorial(n))


def _round(x: Number, digits: Number | None = None) -> Number:
    if digits is None:
        return Fraction(round(x))
    places = _integer(digits, "round's digits")
    if isinstance(x, Fraction):
        return round(x, places)  # exact: Fraction.__round__
    return round(x, places)


def _float_fn(fn: Callable[[float], float]) -> Callable[[Number], Number]:
    return lambda x: fn(float(x))


FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": _sqrt,
    "log": _log,
    "ln": _log,
    "log10": lambda x: _log(x, Fraction(10)),
    "log2": lambda x: _log(x, Fraction(2)),
    "exp": _float_fn(math.exp),
    "sin": _float_fn(math.sin),
    "cos": _float_fn(math.cos),
    "tan": _float_fn(math.tan),
    "asin": _float_fn(math.asin),
    "acos": _float_fn(math.acos),
    "atan": _float_fn(math.atan),
    "abs": abs,
    "round": _round,
    "floor": lambda x: Fraction(math.floor(x)),
    "ceil": lambda x: Fraction(math.ceil(x)),
    "factorial": _factorial,
    "gcd": lambda *xs: Fraction(math.gcd(*(_integer(x, "gcd") for x in xs))),
    "min": min,
    "max": max,
}


class _Evaluator:
    def __init__(self, source: str) -> None:
        self.source = source

    def eval(self, node: ast.AST, depth: int = 0) -> Number:
        if depth > MAX_DEPTH:
            raise ToolError(f"the expression is nested too deeply (over {MAX_DEPTH} levels)")
        value = self._eval(node, depth + 1)
        if isinstance(value, int):  # Fraction // Fraction, round() and friends give int
            value = Fraction(value)
        return _check_size(value)

    def _eval(self, node: ast.AST, depth: int) -> Number:
        if isinstance(node, ast.Expression):
            return self.eval(node.body, depth)
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = self.eval(node.operand, depth)
            return -value if isinstance(node.op, ast.USub) else +value
        if isinstance(node, ast.BinOp):
            left, right = self.eval(node.left, depth), self.eval(node.right, depth)
            if isinstance(node.op, ast.Pow):
                return _power(left, right)
            if isinstance(node.op, ast.BitXor):
                raise ToolError("'^' is not a power here; write ** (e.g. 2**10)")
            op = _BINARY.get(type(node.op))
            if op is None:
                raise ToolError(f"operator {type(node.op).__name__} is not supported")
            if isinstance(node.op, ast.Div | ast.FloorDiv | ast.Mod) and right == 0:
                raise ToolError("division by zero")
            return op(left, right)
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            raise ToolError(f"unknown name {node.id!r}; constants: {', '.join(CONSTANTS)}")
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        what = type(node).__name__
        raise ToolError(f"{what} is not allowed; only numbers, operators and math functions")

    def _constant(self, node: ast.Constant) -> Number:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ToolError(f"only numbers are allowed, not {type(value).__name__} literals")
        if isinstance(value, int):
            return Fraction(value)
        text = (ast.get_source_segment(self.source, node) or repr(value)).replace("_", "")
        if abs(Decimal(text).adjusted()) > MAX_BITS // 3:  # before 10**exponent is built
            raise ToolError(f"the number {text[:40]} is too large")
        return Fraction(text)  # the literal as written: 0.1 is 1/10

    def _call(self, node: ast.Call, depth: int) -> Number:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            shown = ast.get_source_segment(self.source, node.func) or "?"
            raise ToolError(f"function {shown!r} is not allowed; use: {', '.join(FUNCTIONS)}")
        if node.keywords:
            raise ToolError("keyword arguments are not supported")
        args = [self.eval(a, depth) for a in node.args]
        try:
            return FUNCTIONS[node.func.id](*args)
        except TypeError:
            raise ToolError(f"wrong number of arguments for {node.func.id}()") from None


def evaluate(expression: str) -> Number:
    """The exact (Fraction) or approximate (float) value of `expression`."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is too long (at most {MAX_EXPRESSION_CHARS} characters)")
    source = expression.strip()
    if not source:
        raise ToolError("empty expression")
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise ToolError(f"not a valid expression: {getattr(exc, 'msg', exc)}") from None
    try:
        return _Evaluator(source).eval(tree)
    except (OverflowError, ValueError, ZeroDivisionError) as exc:
        raise ToolError(f"cannot compute: {exc}") from None
    except RecursionError:
        raise ToolError("the expression is nested too deeply") from None


def _decimal(value: Fraction, digits: int) -> str:
    """`value` rounded to `digits` significant digits, in plain or scientific notation."""
    ctx = Context(prec=digits)
    approx = ctx.divide(ctx.create_decimal(value.numerator), ctx.create_decimal(value.denominator))
    return str(approx.normalize(ctx)) if abs(approx.adjusted()) < digits else str(approx)


def _exact_decimal(value: Fraction) -> str | None:
    """The terminating decimal expansion of `value`, if it has a short one."""
    den, twos, fives = value.denominator, 0, 0
    while den % 2 == 0:
        den, twos = den // 2, twos + 1
    while den % 5 == 0:
        den, fives = den // 5, fives + 1
    places = max(twos, fives)
    if den != 1 or places > 100:
        return None
    scaled = abs(value.numerator) * (10**places // value.denominator)
    sign = "-" if value < 0 else ""
    whole, frac = divmod(scaled, 10**places)
    return f"{sign}{whole}.{str(frac).rjust(places, '0')}"


def format_number(value: Number) -> str:
    """Integers exactly; terminating fractions as exact decimals; others as n/d ≈ x."""
    if isinstance(value, float):
        return repr(value)
    if value.denominator == 1:
        return str(value.numerator)
    exact = _exact_decimal(value)
    if exact is not None:
        return exact
    return f"{value.numerator}/{value.denominator} ≈ {_decimal(value, APPROX_DIGITS)}"


def make_calculator() -> FunctionTool:
    @tool(name="calculator", read_only=True, idempotent=True)
    async def calculator(expression: str) -> ToolResult:
        """Evaluate an arithmetic expression exactly.

        Supports + - * / // % **, parentheses, big integers, exact decimals and
        fractions, the functions sqrt log ln log10 log2 exp sin cos tan asin acos atan
        abs round floor ceil factorial gcd min max, and the constants pi, e, tau.

        Args:
            expression: The expression, e.g. "123456789 * 987654321" or "sqrt(2) / 3".
        """
        value = evaluate(expression)
        exact = isinstance(value, Fraction)
        data: dict[str, object] = {"exact": exact}
        if isinstance(value, Fraction):
            data["numerator"] = str(value.numerator)
            data["denominator"] = str(value.denominator)
        text = format_number(value)
        return ToolResult.success(text if exact else f"{text} (approximate)", data=data)

    return calculator
