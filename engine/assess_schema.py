"""The schema side of an assessment: the source's columns against the model's features.

Unlike planning (which stops at the first bad column), this looks at every file and every
feature, so one report lists all that is missing, mistyped or extra, and for a missing
feature the source columns it was probably meant to be (a different case, spaces for
underscores, a typo).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.source import SourceFile, is_numeric

_SEPARATORS = re.compile(r"[\s_\-.]+")


def normalise(name: str) -> str:
    """A column name without case or separators: ``Spend 30d`` and ``spend_30d`` agree."""
    return _SEPARATORS.sub("", name.casefold())


def near_misses(name: str, columns: list[str], limit: int = 3) -> list[str]:
    """Source columns that ``name`` was probably meant to be, most likely first.

    First the columns equal to ``name`` but for case and separators, then difflib's close
    matches (typos), compared on the normalised names as well as the raw ones.
    """
    key = normalise(name)
    same = [c for c in columns if c != name and normalise(c) == key]
    rest = [c for c in columns if c != name and c not in same]
    by_norm: dict[str, list[str]] = {}
    for c in rest:
        by_norm.setdefault(normalise(c), []).append(c)
    close = difflib.get_close_matches(name, rest, n=limit, cutoff=0.75)
    for match in difflib.get_close_matches(key, list(by_norm), n=limit, cutoff=0.75):
        close += [c for c in by_norm[match] if c not in close]
    return (same + close)[:limit]


@dataclass
class ColumnCheck:
    """One column the job needs, across every file of the source."""

    feature: str | None  # None for the id column
    column: str
    status: str  # ok | missing | partial | mistyped
    types: list[str] = field(default_factory=list)
    files_missing: int = 0
    first_file_missing: str | None = None
    first_file_mistyped: str | None = None
    near_misses: list[str] = field(default_factory=list)
    bad_type: str | None = None

    def problem(self, files: int) -> str | None:
        """The one-line message of a column that stops the job, or None."""
        what = f"id column {self.column!r}" if self.feature is None else (
            f"feature column {self.column!r}"
            + (f" (model feature {self.feature!r})" if self.feature != self.column else "")
        )  # fmt: skip
        hint = ""
        if self.near_misses:
            hint = "; near misses: " + ", ".join(repr(c) for c in self.near_misses)
        if self.status == "missing":
            return f"{what} not found in any of {files} file(s){hint}"
        if self.status == "partial":
            return (
                f"{what} missing from {self.files_missing} of {files} file(s), "
                f"first {self.first_file_missing}{hint}"
            )
        if self.status == "mistyped" and self.feature is None:
            return f"{what} has different types in different files: {', '.join(self.types)}"
        if self.status == "mistyped":
            return f"{self.first_file_mistyped}: {what} has type {self.bad_type}, not numeric"
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SchemaReport:
    columns: list[ColumnCheck]
    extra_columns: list[str]
    files: int

    @property
    def problems(self) -> list[str]:
        return [p for c in self.columns if (p := c.problem(self.files))]

    @property
    def features_ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.features_ok,
            "columns": [c.to_dict() for c in self.columns],
            "extra_columns": self.extra_columns,
        }


def check_schema(
    files: list[SourceFile], features: dict[str, str], id_column: str | None
) -> SchemaReport:
    """Every needed column in every file: present, numeric (features), and what is extra."""
    all_columns: list[str] = []
    for f in files:
        all_columns += [n for n in f.schema.names if n not in all_columns]
    needed: list[tuple[str | None, str]] = list(features.items())
    if id_column is not None:
        needed.append((None, id_column))
    checks: list[ColumnCheck] = []
    for feature, column in needed:
        check = ColumnCheck(feature=feature, column=column, status="ok")
        types: list[str] = []
        for f in files:
            if column not in f.schema.names:
                check.files_missing += 1
                check.first_file_missing = check.first_file_missing or f.path
                continue
            dtype = f.schema.field(column).type
            if str(dtype) not in types:
                types.append(str(dtype))
            if feature is not None and not is_numeric(dtype) and check.status == "ok":
                check.status = "mistyped"
                check.first_file_mistyped = f.path
                check.bad_type = str(dtype)
        check.types = types
        if check.files_missing:
            check.status = "missing" if check.files_missing == len(files) else "partial"
            check.near_misses = near_misses(column, all_columns)
        elif feature is None and len(types) > 1:  # ids of different types do not concatenate
            check.status = "mistyped"
        checks.append(check)
    used = {column for _, column in needed}
    return SchemaReport(
        columns=checks,
        extra_columns=[c for c in all_columns if c not in used],
        files=len(files),
    )
