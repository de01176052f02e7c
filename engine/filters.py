"""Row filters (``--filter``) and partition predicates (``--overwrite-partition``).

A small, safe grammar, parsed here and never evaluated as Python::

    expr    := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | "(" expr ")" | test
    test    := column op literal | column ["not"] "in" "(" literal ("," literal)* ")"
             | column "is" ["not"] "null"
    op      := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    literal := number | 'text' | "text" | true | false

Columns are identifiers (letters, digits, ``_``). Keywords are case-insensitive.

A parsed filter is a tree of frozen dataclasses (picklable, and printed back as text by
``str``). :func:`simplify` replaces the tests on partition columns by their value for one
file (so whole files are pruned before they are opened) and :func:`to_arrow` turns what is
left into a ``pyarrow.dataset`` expression (row groups pruned by statistics, rows filtered).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from engine.errors import BadInputError

if TYPE_CHECKING:  # pyarrow.compute (50 ms) loads only when a filter is pushed down
    import pyarrow.compute as pc

Literal = str | int | float | bool

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
      | '(?P<squote>(?:[^']|'')*)'
      | "(?P<dquote>(?:[^"]|"")*)"
      | (?P<op><=|>=|<>|!=|==|=|<|>|\(|\)|,)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}
_OPS = {"=": "==", "==": "==", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True)
class Compare:
    column: str
    op: str  # one of == != < <= > >=
    value: Literal

    def __str__(self) -> str:
        return f"{self.column} {self.op} {_literal_text(self.value)}"


@dataclass(frozen=True)
class In:
    column: str
    values: tuple[Literal, ...]
    negated: bool = False

    def __str__(self) -> str:
        items = ", ".join(_literal_text(v) for v in self.values)
        return f"{self.column} {'not in' if self.negated else 'in'} ({items})"


@dataclass(frozen=True)
class IsNull:
    column: str
    negated: bool = False

    def __str__(self) -> str:
        return f"{self.column} is {'not ' if self.negated else ''}null"


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    items: tuple[Expr, ...]

    def __str__(self) -> str:
        return f" {self.op} ".join(f"({item})" for item in self.items)


@dataclass(frozen=True)
class Not:
    item: Expr

    def __str__(self) -> str:
        return f"not ({self.item})"


Expr = Compare | In | IsNull | BoolOp | Not


def _literal_text(value: Literal) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def parse(text: str, *, what: str = "--filter") -> Expr:
    """Parse ``text``; a syntax error is bad input naming ``what`` and the position."""
    return _Parser(text, what).parse()


class _Parser:
    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.what = what
        self.tokens: list[tuple[str, object, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if m is None:
                self._fail(f"unexpected {text[pos:].strip()[:10]!r}", pos)
            kind = m.lastgroup or ""
            raw = m.group(kind)
            start = m.start(kind)
            if kind == "number":
                value: object = float(raw) if any(c in raw for c in ".eE") else int(raw)
            elif kind in ("squote", "dquote"):
                kind, value = "text", raw.replace("''", "'").replace('""', '"')
            elif kind == "word" and raw.lower() in _KEYWORDS:
                kind, value = "kw", raw.lower()
            else:
                value = raw
            self.tokens.append((kind, value, start))
            pos = m.end()
        self.i = 0

    def _fail(self, message: str, pos: int | None = None) -> None:
        where = f" at character {pos + 1}" if pos is not None else ""
        raise BadInputError(f"{self.what} {self.text!r}: {message}{where}")

    def _peek(self) -> tuple[str, object, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self, kind: str, value: object = None) -> bool:
        tok = self._peek()
        if tok is not None and tok[0] == kind and (value is None or tok[1] == value):
            self.i += 1
            return True
        return False

    def _expect(self, kind: str, value: object = None, wanted: str = "") -> object:
        tok = self._peek()
        if not self._take(kind, value):
            got = "the end" if tok is None else repr(tok[1])
            self._fail(f"expected {wanted or value or kind}, got {got}", tok[2] if tok else None)
        return self.tokens[self.i - 1][1]

    def parse(self) -> Expr:
        if not self.tokens:
            self._fail("empty expression")
        expr = self._or()
        tok = self._peek()
        if tok is not None:
            self._fail(f"unexpected {tok[1]!r}", tok[2])
        return expr

    def _or(self) -> Expr:
        items = [self._and()]
        while self._take("kw", "or"):
            items.append(self._and())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def _and(self) -> Expr:
        items = [self._not()]
        while self._take("kw", "and"):
            items.append(self._not())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def _not(self) -> Expr:
        if self._take("kw", "not"):
            return Not(self._not())
        if self._take("op", "("):
            expr = self._or()
            self._expect("op", ")")
            return expr
        return self._test()

    def _test(self) -> Expr:
        column = str(self._expect("word", wanted="a column name"))
        if self._take("kw", "is"):
            negated = self._take("kw", "not")
            self._expect("kw", "null")
            return IsNull(column, negated)
        negated = self._take("kw", "not")
        if negated or self._take("kw", "in"):
            if negated:
                self._expect("kw", "in")
            self._expect("op", "(")
            values = [self._literal()]
            while self._take("op", ","):
                values.append(self._literal())
            self._expect("op", ")")
            return In(column, tuple(values), negated)
        tok = self._peek()
        if tok is None or tok[0] != "op" or tok[1] not in _OPS:
            self._fail("expected a comparison, in or is null", tok[2] if tok else None)
        self.i += 1
        return Compare(column, _OPS[str(tok[1])], self._literal())

    def _literal(self) -> Literal:
        tok = self._peek()
        if tok is not None:
            kind, value, _ = tok
            if kind in ("number", "text"):
                self.i += 1
                return value  # type: ignore[return-value]
            if kind == "kw" and value in ("true", "false"):
                self.i += 1
                return value == "true"
        self._fail("expected a literal (number, 'text', true, false)", tok[2] if tok else None)
        raise AssertionError("unreachable")


def columns(expr: Expr) -> set[str]:
    """Every column the expression names."""
    if isinstance(expr, BoolOp):
        return set().union(*(columns(e) for e in expr.items))
    if isinstance(expr, Not):
        return columns(expr.item)
    return {expr.column}


def simplify(expr: Expr, known: dict[str, str | None]) -> Expr | bool:
    """Replace tests on the ``known`` columns (partition values, as text) by their result.

    Returns True or False when the expression no longer depends on data columns, else the
    expression that is left. A comparison with null is false (SQL's unknown filters out).
    """
    if isinstance(expr, BoolOp):
        parts = [simplify(e, known) for e in expr.items]
        decisive = expr.op == "or"  # True decides an or, False decides an and
        if decisive in parts:
            return decisive
        left = tuple(p for p in parts if not isinstance(p, bool))
        if not left:
            return not decisive
        return left[0] if len(left) == 1 else BoolOp(expr.op, left)
    if isinstance(expr, Not):
        inner = simplify(expr.item, known)
        return (not inner) if isinstance(inner, bool) else Not(inner)
    if expr.column not in known:
        return expr
    value = known[expr.column]
    if isinstance(expr, IsNull):
        return (value is None) != expr.negated
    if value is None:
        return False
    if isinstance(expr, In):
        return any(_compare(value, "==", v) for v in expr.values) != expr.negated
    return _compare(value, expr.op, expr.value)


def _compare(text: str, op: str, literal: Literal) -> bool:
    """A partition value (text) against a literal, numerically when the literal is a number."""
    left: object = text
    right: object = literal
    if isinstance(literal, bool):
        left = text.lower() in ("true", "1")
    elif isinstance(literal, int | float):
        try:
            left = float(text)
        except ValueError:
            return op == "!="  # not a number: equal to no number
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    try:
        return {
            "<": left < right,  # type: ignore[operator]
            "<=": left <= right,  # type: ignore[operator]
            ">": left > right,  # type: ignore[operator]
            ">=": left >= right,  # type: ignore[operator]
        }[op]
    except TypeError:
        return False


def to_arrow(expr: Expr) -> pc.Expression:
    """The Arrow expression of ``expr`` (what ``pyarrow.dataset`` scanners filter with)."""
    import pyarrow.compute as pc

    if isinstance(expr, BoolOp):
        out = to_arrow(expr.items[0])
        for item in expr.items[1:]:
            out = (out & to_arrow(item)) if expr.op == "and" else (out | to_arrow(item))
        return out
    if isinstance(expr, Not):
        return ~to_arrow(expr.item)
    field = pc.field(expr.column)
    if isinstance(expr, IsNull):
        test = field.is_null()
        return ~test if expr.negated else test
    if isinstance(expr, In):
        try:
            test = field.isin(list(expr.values))
        except (pa.ArrowException, TypeError):
            raise BadInputError(
                f"filter {expr}: the values of in (...) must have one type"
            ) from None
        return ~test if expr.negated else test
    return {
        "==": field == expr.value,
        "!=": field != expr.value,
        "<": field < expr.value,
        "<=": field <= expr.value,
        ">": field > expr.value,
        ">=": field >= expr.value,
    }[expr.op]


def partition_equalities(expr: Expr, *, what: str) -> dict[str, str]:
    """``col = 'v' and ...`` as ``{col: "v"}`` (for ``--overwrite-partition``)."""
    items = expr.items if isinstance(expr, BoolOp) and expr.op == "and" else (expr,)
    out: dict[str, str] = {}
    for item in items:
        if not isinstance(item, Compare) or item.op != "==" or isinstance(item.value, bool):
            raise BadInputError(f"{what} {expr}: expected col = 'value' [and col = 'value' ...]")
        value = item.value
        out[item.column] = value if isinstance(value, str) else _literal_text(value)
    return out
