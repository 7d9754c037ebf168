"""Block-argument substitution: ``$name`` and ``${expression}`` in spec values.

``$filters`` (the whole value) is replaced by the argument's value with its type;
``${filters * 4}`` by the value of a small arithmetic/boolean expression; inside a
longer string (``stage$n``) both are interpolated as text. Expressions allow numbers,
argument names, ``+ - * / // % **``, comparisons, ``and or not`` and ``x if c else y``:
nothing that can call code.
"""

from __future__ import annotations

import ast
import operator
import re

from archcheck.errors import ArchcheckError, show

_WHOLE = re.compile(r"^\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([^{}]*)\})$")
_PART = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([^{}]*)\})")

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}


class ExprError(ArchcheckError, ValueError):
    """An expression or reference that cannot be evaluated; the message says why."""

    def __init__(self, message: str, fix: str = "write numbers, argument names and + - * / // % ** "
                 "comparisons and/or/not, e.g. \"${filters * 4}\"", unbound: str | None = None):
        super().__init__(message, fix)
        self.unbound = unbound  # the name that has no value, if that is the problem


def has_reference(value) -> bool:
    return isinstance(value, str) and "$" in value


def substitute(text: str, env: dict):
    """Replace references in one string; a whole-value reference keeps its type."""
    whole = _WHOLE.match(text)
    if whole:
        return _lookup(whole.group(1), env) if whole.group(1) else evaluate(whole.group(2), env)

    pieces, end, size = [], 0, 0
    for m in _PART.finditer(text):  # the length is checked as it grows: `$t$t$t$t` through 20 blocks is 4^20
        value = _lookup(m.group(1), env) if m.group(1) else evaluate(m.group(2), env)
        if isinstance(value, (dict, list)):
            raise ExprError(f"'{m.group(0)}' is a {'mapping' if isinstance(value, dict) else 'list'} and cannot be "
                            "written inside a text", "refer to it alone (`filters: $widths`), not inside other text")
        piece = value if isinstance(value, str) else str(value)
        size += m.start() - end + len(piece)
        if size > MAX_TEXT:
            raise ExprError(f"'{text[:60]}{'...' if len(text) > 60 else ''}' grows to more than {MAX_TEXT:,} "
                            "characters once its references are replaced",
                            "keep texts short; repeated `$name` inside a text doubles it at every block level")
        pieces += [text[end:m.start()], piece]
        end = m.end()
    return "".join(pieces) + text[end:]


def _lookup(name: str, env: dict):
    if name not in env:
        declared = ", ".join(sorted(env)) or "none"
        raise ExprError(f"'${name}' is not bound: the enclosing block declares {declared}",
                        "declare it in the block's `args` and pass it where the block is used", name)
    return env[name]


MAX_SOURCE = 500  # characters in one expression
MAX_BITS = 64  # whole numbers an expression may produce (sizes are far smaller)
MAX_TEXT = 1_000  # characters of text an expression may produce


def evaluate(source: str, env: dict):
    if len(source) > MAX_SOURCE:
        raise ExprError(f"an expression of {len(source):,} characters is too long (at most {MAX_SOURCE})",
                        "compute the value in the block's arguments or write it out")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ExprError(f"'${{{source}}}' is not a valid expression") from None
    try:
        return _eval(tree.body, env, source)
    except RecursionError:
        raise ExprError(f"'${{{source}}}' nests too deeply") from None


def _number(value) -> bool:
    return isinstance(value, (int, float))


def _bounded(value, source: str):
    """``value``, unless it is too large to be a real size or name (a hostile ``${9**64**2}``)."""
    if isinstance(value, int) and value.bit_length() > MAX_BITS:
        raise ExprError(f"'${{{source}}}' gives a number of more than {MAX_BITS} bits; sizes are far smaller")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise ExprError(f"'${{{source}}}' gives a text of {len(value):,} characters (at most {MAX_TEXT:,})")
    return value


def _eval(node, env, source):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool, str)):
        return _bounded(node.value, source)
    if isinstance(node, ast.Name):
        if node.id in ("true", "false"):
            return node.id == "true"
        return _lookup(node.id, env)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, env, source), _eval(node.right, env, source)
        text = isinstance(node.op, ast.Add) and isinstance(left, str) and isinstance(right, str)
        if not text and not (_number(left) and _number(right)):
            raise ExprError(f"'${{{source}}}': arithmetic needs numbers, received {show(left)} and {show(right)}",
                            "use numeric arguments; text can only be joined with +")
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ExprError(f"'${{{source}}}': exponent {right} is too large")
        try:
            return _bounded(_BINARY[type(node.op)](left, right), source)
        except (ArithmeticError, TypeError) as exc:
            raise ExprError(f"'${{{source}}}' cannot be computed: {exc}",
                            "check the values of the arguments it uses, where the block is used") from None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        value = _eval(node.operand, env, source)
        if isinstance(node.op, ast.Not):
            return not value
        if not _number(value):
            raise ExprError(f"'${{{source}}}': a sign needs a number, received {show(value)}")
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BoolOp):
        values = [_eval(v, env, source) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        left = _eval(node.left, env, source)
        for op, comparator in zip(node.ops, node.comparators):
            right = _eval(comparator, env, source)
            try:
                if not _COMPARE[type(op)](left, right):
                    return False
            except TypeError:
                raise ExprError(f"'${{{source}}}' cannot compare {show(left)} with {show(right)}") from None
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, env, source) else node.orelse, env, source)
    raise ExprError(f"'${{{source}}}' uses something expressions cannot: only numbers, argument names, "
                    "arithmetic, comparisons, and/or/not and 'x if c else y' are allowed")
