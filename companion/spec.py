"""Parameter specs: each chapter's parameters' types and valid ranges, checked before it runs.

A chapter declares, in a cell tagged ``parameter-spec`` right after its ``parameters`` cell,
``spec = {name: "spec string", …}`` for every parameter that is not one of the book's shared
names (:data:`SHARED`, which it may still restrict), and optionally ``rules = ["a < b", …]``
relating parameters. A spec string reads

    spec    := alt (" or " alt)*            any alternative may match (tried in order)
    alt     := "none" | "list of " item | item
    item    := "bool" | "str" | "one of " word (", " word)*
             | ("int" | "float") [bound]
    bound   := "in" ("(" | "[") num ", " num (")" | "]")     open ( ) or closed [ ] ends
             | (">" | ">=" | "<" | "<=") num
    num     := a number: 2, -1, 0.5, 1e-3, 2**31

e.g. ``"float in (0, 2)"``, ``"int >= 1"``, ``"one of sgd, adamw"``, ``"list of int >= 0"``,
``"float > 0 or list of float > 0"``, ``"int >= 1 or none"``. Lists are non-empty; booleans
are not ints; an int is accepted (and converted) where a float is asked for; floats are
finite. A rule compares parameters and numbers (``<``, ``<=``, ``==``, ``!=``, ``>``, ``>=``,
``len(name)``, ``+ - * /``), e.g. ``"reset_at < steps"``, ``"fail_growth * rho > 1"``.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["SHARED", "Item", "Spec", "check_rule", "parse", "parse_rule", "validate"]

# The book's shared parameter names (the same meaning in every chapter that declares them):
# a chapter's spec cell lists only its own names, or a shared one it restricts further.
SHARED: dict[str, str] = {
    "profile": "str",
    "figure": "str",
    "seed": "int in [0, 2**31)",
    "seeds": "list of int in [0, 2**31)",
    "steps": "int >= 1",
    "lr": "float > 0",
    "batch_size": "int >= 1",
    "width": "float > 0",
    "depth": "int >= 1",
    "init": "one of he, lecun, torch",
    "record_every": "int >= 1",
    "forward_every": "int >= 1",
    "lags": "list of int >= 1",
    "anchor_offsets": "none or list of int >= 1",
    "bn_stats": "int >= 0",
    "train_size": "int in [1, 60000]",
    "train_eval": "int in [1, 50000]",
    "test_eval": "int in [1, 10000]",
    "device": "one of cpu, cuda",
    "executor": "one of sequential, batched, ray",
    "chain_batch": "int >= 1",
}


def _number(text: str) -> float | int:
    """A numeric literal of the grammar, evaluated without ``eval``: digits, ``-``, ``**``."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"not a number: {text.strip()!r}") from None

    def value(n: ast.AST) -> float | int:
        if isinstance(n, ast.Constant) and type(n.value) in (int, float):
            return n.value
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -value(n.operand)
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow):
            return value(n.left) ** value(n.right)
        raise ValueError(f"not a number: {text.strip()!r}")

    return value(node)


@dataclass(frozen=True)
class Item:
    """One scalar kind: ``bool``, ``str``, ``one of …``, or ``int``/``float`` with a bound."""

    kind: str  # bool | str | choice | int | float
    text: str  # as written, for messages
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = True
    hi_open: bool = True

    def accepts(self, value: Any) -> tuple[bool, Any]:
        """Whether ``value`` fits, and the value as the chapter gets it (int → float)."""
        if self.kind == "bool":
            return isinstance(value, bool), value
        if self.kind == "str":
            return isinstance(value, str), value
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices, value
        # bool is a subclass of int, but True is not a step count
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value
        if self.kind == "int":
            if not isinstance(value, int):
                return False, value
        else:
            value = float(value)
            if not math.isfinite(value):
                return False, value
        if self.lo is not None and not (self.lo < value if self.lo_open else self.lo <= value):
            return False, value
        if self.hi is not None and not (value < self.hi if self.hi_open else value <= self.hi):
            return False, value
        return True, value

    def describe(self) -> str:
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)}"
        return f"an {self.text}" if self.text.startswith("int") else f"a {self.text}"


@dataclass(frozen=True)
class Spec:
    """A parsed spec string: alternatives, each ``none``, an item or a non-empty list of one."""

    text: str
    alternatives: tuple[tuple[str, Item | None], ...]  # ("none" | "item" | "list", item)

    def describe(self) -> str:
        words = []
        for form, item in self.alternatives:
            if form == "none":
                words.append("none")
            elif form == "list":
                words.append(f"a non-empty list of {item.text}")
            else:
                words.append(item.describe())
        return " or ".join(words)


def _item(text: str) -> Item:
    text = " ".join(text.split())
    if text in ("bool", "str"):
        return Item(text, text)
    if text.startswith("one of "):
        choices = tuple(c.strip() for c in text[len("one of ") :].split(","))
        if not all(re.fullmatch(r"[\w.:+-]+", c) for c in choices):
            raise ValueError(f"choices must be plain words: {text!r}")
        return Item("choice", text, choices=choices)
    m = re.fullmatch(r"(int|float)(?: (.*))?", text)
    if not m:
        raise ValueError(f"unknown spec {text!r}: expected bool, str, one of …, int …, float …")
    kind, bound = m.group(1), m.group(2)
    if bound is None:
        return Item(kind, text)
    m = re.fullmatch(r"in ([(\[])(.+),(.+)([)\]])", bound)
    if m:
        lo, hi = _number(m.group(2)), _number(m.group(3))
        if not lo < hi:
            raise ValueError(f"empty range in {text!r}")
        return Item(kind, text, lo=lo, hi=hi, lo_open=m.group(1) == "(", hi_open=m.group(4) == ")")
    m = re.fullmatch(r"(>=|<=|>|<) (.+)", bound)
    if m:
        op, num = m.group(1), _number(m.group(2))
        if op.startswith(">"):
            return Item(kind, text, lo=num, lo_open=op == ">")
        return Item(kind, text, hi=num, hi_open=op == "<")
    raise ValueError(f"unknown bound {bound!r} in {text!r}: expected 'in (a, b)', '> a', '>= a', …")


def parse(text: str) -> Spec:
    """Parse a spec string (see the module docstring); ValueError if it does not read."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a spec must be a non-empty string, got {text!r}")
    alternatives: list[tuple[str, Item | None]] = []
    for alt in text.split(" or "):
        alt = alt.strip()
        if alt == "none":
            alternatives.append(("none", None))
        elif alt.startswith("list of "):
            alternatives.append(("list", _item(alt[len("list of ") :])))
        else:
            alternatives.append(("item", _item(alt)))
    return Spec(text, tuple(alternatives))


def validate(name: str, value: Any, spec: str | Spec) -> Any:
    """``value`` if it fits ``spec`` (ints given for floats become floats), else ValueError
    naming the parameter and its valid range, e.g. ``h: must be a float in (0, 2), got -1``."""
    spec = parse(spec) if isinstance(spec, str) else spec
    detail = ""
    for form, item in spec.alternatives:
        if form == "none":
            if value is None:
                return None
        elif form == "item":
            ok, out = item.accepts(value)
            if ok:
                return out
        elif isinstance(value, (list, tuple)) and value:
            checked = [item.accepts(v) for v in value]
            bad = [i for i, (ok, _) in enumerate(checked) if not ok]
            if not bad:
                return type(value)(out for _, out in checked)
            detail = f" (item {bad[0]}: {value[bad[0]]!r})"
        elif isinstance(value, (list, tuple)):
            detail = " (the list is empty)"
    raise ValueError(f"{name}: must be {spec.describe()}, got {value!r}{detail}")


_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.Eq: operator.eq, ast.NotEq: operator.ne}  # fmt: skip
_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _names(term: ast.AST, rule: str) -> set[str]:
    """Parameter names in one side of a rule; ValueError for anything but names, ``len(name)``,
    numbers and ``+ - * /``."""
    if isinstance(term, ast.Name):
        return {term.id}
    if isinstance(term, ast.Call):
        if getattr(term.func, "id", None) == "len" and not term.keywords and len(term.args) == 1:
            if isinstance(term.args[0], ast.Name):
                return {term.args[0].id}
    elif isinstance(term, ast.BinOp) and type(term.op) in _ARITH:
        return _names(term.left, rule) | _names(term.right, rule)
    elif isinstance(term, ast.UnaryOp) and isinstance(term.op, ast.USub):
        return _names(term.operand, rule)
    elif isinstance(term, ast.Constant) and type(term.value) in (int, float):
        return set()
    raise ValueError(f"rule {rule!r}: use names, len(name), numbers and + - * / only")


def parse_rule(rule: str) -> tuple[ast.Compare, set[str]]:
    """A rule's comparison and the parameter names it reads; ValueError if it is not one."""
    try:
        node = ast.parse(rule, mode="eval").body
    except SyntaxError as err:
        raise ValueError(f"rule {rule!r} does not parse: {err.msg}") from None
    if not isinstance(node, ast.Compare) or not all(type(op) in _COMPARE for op in node.ops):
        raise ValueError(f"rule {rule!r} must be a comparison such as 'a < b'")
    return node, set().union(*(_names(t, rule) for t in [node.left, *node.comparators]))


def check_rule(rule: str, values: dict[str, Any]) -> bool:
    """Whether the (already validated) ``values`` satisfy ``rule``; a rule on a None holds."""
    node, names = parse_rule(rule)
    if any(values[n] is None for n in names):
        return True

    def term(t: ast.AST) -> Any:
        if isinstance(t, ast.Name):
            return values[t.id]
        if isinstance(t, ast.Call):
            v = values[t.args[0].id]
            return len(v) if isinstance(v, (list, tuple)) else 1  # a scalar counts as one
        if isinstance(t, ast.BinOp):
            return _ARITH[type(t.op)](term(t.left), term(t.right))
        if isinstance(t, ast.UnaryOp):
            return -term(t.operand)
        return t.value

    try:
        terms = [term(t) for t in [node.left, *node.comparators]]
    except ZeroDivisionError:
        return False
    left = terms[0]
    for op, right in zip(node.ops, terms[1:], strict=True):
        if not _COMPARE[type(op)](left, right):
            return False
        left = right
    return True
