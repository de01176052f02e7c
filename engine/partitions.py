"""Partitioned output: ``--partition-by`` columns, hive paths, and the backfill target.

``--partition-by COL`` takes the partition value of each row from the source column
``COL`` (a data column, or a hive/Delta partition column of the source);
``--partition-by COL=VALUE`` adds a constant column (the scoring date of a nightly run:
``score_date=2026-11-01``). Partition values are text (as in hive paths and the Delta
log); a null is hive's ``__HIVE_DEFAULT_PARTITION__``. Partition columns live in the paths
(Parquet sink) or the Delta log (Delta sink), not in the part files, as Spark writes them.

``--overwrite-partition "col = 'v' [and ...]"`` names one partition by equalities on the
first partition columns; the run then holds only rows of that partition and replaces it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from engine import filters
from engine.errors import BadInputError

log = logging.getLogger("lakescore.partitions")

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class PartitionColumn:
    """One output partition column: a constant ``value``, or the source column's values."""

    name: str
    value: str | None = None

    @property
    def constant(self) -> bool:
        return self.value is not None


def parse_partition_by(items: list[str] | tuple[str, ...]) -> tuple[PartitionColumn, ...]:
    out: list[PartitionColumn] = []
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not _NAME.match(name) or (sep and not value):
            raise BadInputError(f"--partition-by {item!r}: expected COL or COL=VALUE")
        if name in {c.name for c in out}:
            raise BadInputError(f"--partition-by {item!r}: column {name!r} given twice")
        out.append(PartitionColumn(name, value if sep else None))
    return tuple(out)


def hive_segment(name: str, value: str | None) -> str:
    """``name=value`` with the value escaped so that it is one path segment."""
    return f"{name}={NULL_PARTITION if value is None else quote(value, safe='-_.:+')}"


def hive_path(values: tuple[tuple[str, str | None], ...]) -> str:
    return "/".join(hive_segment(name, value) for name, value in values)


@dataclass(frozen=True)
class Overwrite:
    """The partition a backfill replaces: equalities on the first partition columns."""

    values: tuple[tuple[str, str], ...]

    @property
    def path(self) -> str:
        return hive_path(self.values)

    def source_filter(self, columns: tuple[PartitionColumn, ...]) -> filters.Expr | None:
        """What the run must read: the equalities on columns taken from the source."""
        tests = [
            filters.Compare(c.name, "==", dict(self.values)[c.name])
            for c in columns
            if not c.constant and c.name in dict(self.values)
        ]
        if not tests:
            return None
        return tests[0] if len(tests) == 1 else filters.BoolOp("and", tuple(tests))


def parse_overwrite(text: str, columns: tuple[PartitionColumn, ...]) -> Overwrite:
    what = "--overwrite-partition"
    equal = filters.partition_equalities(filters.parse(text, what=what), what=what)
    names = [c.name for c in columns]
    if not columns:
        raise BadInputError(f"{what} {text!r}: needs --partition-by")
    if set(equal) != set(names[: len(equal)]):
        raise BadInputError(
            f"{what} {text!r}: must name the first partition column(s) {names[: len(equal)]}"
        )
    values = tuple((name, equal[name]) for name in names[: len(equal)])
    for c in columns:
        if c.constant and c.name in equal and equal[c.name] != c.value:
            raise BadInputError(
                f"{what} {text!r}: {c.name} is {c.value!r} in this run, not {equal[c.name]!r}"
            )
    return Overwrite(values)


# --- an atomic directory swap -----------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange_dirs(a: Path, b: Path) -> None:
    """Swap two directories in one step (Linux ``renameat2(RENAME_EXCHANGE)``): a reader
    sees the old or the new directory at ``b``, never neither. Elsewhere it falls back to
    two renames, and a reader may find ``b`` absent for that instant."""
    libc = _libc()
    if libc is not None:
        done = libc.renameat2(
            _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE
        )
        if done == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(b))
    log.warning("atomic directory exchange unavailable here; %s is replaced by two renames", b)
    aside = b.with_name(f".{b.name}.old")
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


def _libc() -> ctypes.CDLL | None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        if hasattr(libc, "renameat2"):
            return libc
    return None
