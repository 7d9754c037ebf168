"""Block-argument substitution: ``$name`` and ``${expression}`` in spec values.

``$filters`` (the whole value) is replaced by the argument's value with its type;
``${filters * 4}`` by the value of a small arithmetic/boolean expression; inside a
longer string (``stage$n``) both are interpolated as text. Expressions allow numbers,
argument names, ``+ - * / // % **``, comparisons, ``and or not``, ``x if c else y``, the
functions in ``FUNCTIONS`` and the incoming shape, ``input.channels`` and its other axes
(``AXES``): nothing that can call code.

A layer argument that reads the incoming shape cannot be known while the spec expands, only once
shapes propagate: ``evaluate`` raises ``NeedsShape`` when ``env`` has no shape under ``SHAPE``, and
the spec keeps the value for later (``archcheck.spec.Deferred``).
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from dataclasses import dataclass

from archcheck.errors import ArchcheckError, Loc, show

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


@dataclass(frozen=True)
class Deferred:
    """A value that reads an incoming shape, kept until the shape is known: its text, the block
    arguments it may also read (some ``Deferred`` themselves) and where it is written. ``anchor`` is the
    layer whose output ``input`` means: None for a layer's own input, the block's input for a value
    passed to a block."""

    text: str
    env: dict
    loc: Loc
    anchor: str | None = None


class NeedsShape(ExprError):
    """The expression reads the incoming shape (``input.channels``), which is not known yet."""

    def __init__(self, source: str):
        super().__init__(f"'${{{source}}}' reads the incoming shape, which is known only once shapes propagate",
                         "pass the value as a block argument instead")


SHAPE = "<input shape>"  # the key of the incoming shape in an environment: no argument can have this name
# the axes of an incoming shape by its rank (without the batch axis), as `input.<axis>` reads them
AXES = {1: ("features",), 2: ("channels", "length"), 3: ("channels", "height", "width"),
        4: ("channels", "depth", "height", "width")}


def make_divisible(value, divisor=8, minimum=None):
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``minimum``, default
    ``divisor``), one multiple higher when rounding would lose more than 10 %: how MobileNet and
    EfficientNet round their widths after a width multiplier (the TF-Slim/TensorFlow models' rule)."""
    for name, x in (("value", value), ("divisor", divisor), ("minimum", minimum)):
        if x is not None and (isinstance(x, bool) or not _number(x)):
            raise ExprError(f"make_divisible's {name} must be a number, received {show(x)}",
                            "write make_divisible(width, 8)")
    if not (isinstance(divisor, int) and divisor >= 1):
        raise ExprError(f"make_divisible's divisor must be a whole number >= 1, received {show(divisor)}",
                        "write make_divisible(width, 8)")
    floor = divisor if minimum is None else minimum
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _min_max(pick):
    def call(*values):
        if not values or not all(_number(v) for v in values):
            raise ExprError(f"{pick.__name__} takes one or more numbers, received "
                            f"{', '.join(map(show, values)) or 'nothing'}", f"write {pick.__name__}(a, b)")
        return pick(values)
    return call


def _one_number(fn, name):
    def call(*values):
        if len(values) != 1 or not _number(values[0]):
            raise ExprError(f"{name} takes one number, received {', '.join(map(show, values)) or 'nothing'}",
                            f"write {name}(x)")
        return fn(values[0])
    return call


FUNCTIONS = {"min": _min_max(min), "max": _min_max(max), "abs": _one_number(abs, "abs"),
             "floor": _one_number(math.floor, "floor"), "ceil": _one_number(math.ceil, "ceil"),
             "int": _one_number(int, "int"), "make_divisible": make_divisible}
MAX_ARGS = 8  # arguments of one function call


def has_reference(value) -> bool:
    return isinstance(value, str) and "$" in value


def substitute(text: str, env: dict):
    """Replace references in one string; a whole-value reference keeps its type."""
    whole = _WHOLE.match(text)
    if whole:
        return _lookup(whole.group(1), env, whole=True) if whole.group(1) else evaluate(whole.group(2), env)

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


def _lookup(name: str, env: dict, whole: bool = False):
    """An argument's value; one that reads a shape not known yet makes the expression wait too,
    unless it is the whole value (``$width``), which is handed on as it is."""
    if name not in env:
        declared = ", ".join(sorted(k for k in env if k != SHAPE)) or "none"
        raise ExprError(f"'${name}' is not bound: the enclosing block declares {declared}",
                        "declare it in the block's `args` and pass it where the block is used", name)
    value = env[name]
    if isinstance(value, Deferred) and not whole:
        raise NeedsShape(value.text)
    return value


MAX_SOURCE = 500  # characters in one expression
MAX_BITS = 64  # whole numbers an expression may produce (sizes are far smaller)
MAX_TEXT = 1_000  # characters of text an expression may produce


def evaluate(source: str, env: dict):
    if len(source) > MAX_SOURCE:
        raise ExprError(f"an expression of {len(source):,} characters is too long (at most {MAX_SOURCE})",
                        "compute the value in the block's arguments or write it out")
    tree = _parse(source.strip())
    if tree is None:
        raise ExprError(f"'${{{source}}}' is not a valid expression")
    try:
        return _eval(tree.body, env, source)
    except RecursionError:
        raise ExprError(f"'${{{source}}}' nests too deeply") from None


@functools.lru_cache(maxsize=4096)
def _parse(source: str) -> ast.Expression | None:
    """The syntax tree of an expression, or None; parsed once however often a block uses it."""
    try:
        return ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


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
    if isinstance(node, ast.Name) and node.id != "input":
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
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "input":
        return _axis(node.attr, env, source)
    if isinstance(node, ast.Name) and node.id == "input" or \
            isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id != "input":
        what = ("the incoming shape as a whole; expressions read one axis of it" if isinstance(node, ast.Name)
                else f"'{ast.unparse(node)}'; only the incoming shape, `input`, has axes to read")
        raise ExprError(f"'${{{source}}}' reads {what}", f"write one of {_axis_list(env)}")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS \
            and not node.keywords:
        if len(node.args) > MAX_ARGS:
            raise ExprError(f"'${{{source}}}' calls {node.func.id} with {len(node.args)} arguments (at most "
                            f"{MAX_ARGS})")
        values = [_eval(a, env, source) for a in node.args]
        try:
            return _bounded(FUNCTIONS[node.func.id](*values), source)
        except ExprError as exc:
            raise ExprError(f"'${{{source}}}': {exc.message}", exc.fix) from None
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise ExprError(f"'${{{source}}}' cannot be computed: {exc}") from None
    if isinstance(node, ast.Call):
        called = ast.unparse(node.func)
        raise ExprError(f"'${{{source}}}' calls {called}{'with named arguments' if node.keywords else ''}; "
                        f"expressions call only {', '.join(FUNCTIONS)}, with their arguments in order",
                        "write e.g. \"${make_divisible(width * 0.75, 8)}\" or \"${min(input.height, 8)}\"")
    raise ExprError(f"'${{{source}}}' uses something expressions cannot: only numbers, argument names, "
                    "arithmetic, comparisons, and/or/not, 'x if c else y', the functions "
                    f"{', '.join(FUNCTIONS)} and input.<axis> are allowed")


def _axis(name: str, env: dict, source: str):
    """``input.<name>``: a size of the incoming shape."""
    shape = env.get(SHAPE)
    if shape is None:
        raise NeedsShape(source)
    axes = AXES[len(shape)]
    if name not in axes:
        raise ExprError(f"'${{{source}}}' reads input.{name}, but the input {list(shape)} has no axis '{name}' "
                        f"(its axes are {', '.join(axes)})", f"write one of {_axis_list(env)}")
    return shape[axes.index(name)]


def _axis_list(env: dict) -> str:
    shape = env.get(SHAPE)
    if shape is None:
        return ", ".join(f"input.{a}" for a in dict.fromkeys(a for axes in AXES.values() for a in axes)) + \
            " (as the shape's rank has them)"
    return ", ".join(f"input.{a}" for a in AXES[len(shape)])
