"""The job spec's ``[drift]`` and ``[checks]`` tables, validated into small frozen objects.

```toml
[drift]                      # limits for every feature and score column
psi_warn = 0.1               # population stability index on the reference's decile bins
psi_fail = 0.25
js_warn = 0.1                # Jensen-Shannon distance (base 2, 0..1) on the same bins
null_rate_warn = 5.0         # change of the null+NaN share, in percentage points
# js_fail, ks_warn, ks_fail, null_rate_fail, out_of_range_warn/fail (share of values
# outside the reference's [min, max]), unseen_warn/fail (share of rows whose value the
# reference never had; discrete columns) are off unless set.

[drift.columns.age]          # one column (a model feature or a score column)
psi_warn = 0.2

[checks]
min_rows = 1000
max_nan_score_share = 0.0    # share of score values that are NaN
max_seconds = 3600
on_fail = "commit"           # or "abort": a failed check leaves the sink untouched
```

Every limit is "greater than the limit" (a PSI of exactly 0.1 is ok).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from engine.errors import BadInputError

ON_FAIL = ("commit", "abort")


@dataclass(frozen=True)
class DriftLimits:
    psi_warn: float | None = 0.1
    psi_fail: float | None = 0.25
    js_warn: float | None = 0.1
    js_fail: float | None = None
    ks_warn: float | None = None
    ks_fail: float | None = None
    null_rate_warn: float | None = 5.0  # percentage points
    null_rate_fail: float | None = None
    out_of_range_warn: float | None = None  # share of rows
    out_of_range_fail: float | None = None
    unseen_warn: float | None = None  # share of rows
    unseen_fail: float | None = None


@dataclass(frozen=True)
class DriftConfig:
    defaults: DriftLimits = field(default_factory=DriftLimits)
    columns: dict[str, DriftLimits] = field(default_factory=dict)

    def limits(self, column: str) -> DriftLimits:
        return self.columns.get(column, self.defaults)


@dataclass(frozen=True)
class ChecksConfig:
    min_rows: int | None = None
    max_nan_score_share: float | None = None
    max_seconds: float | None = None
    on_fail: str = "commit"


_LIMIT_KEYS = {f.name for f in dataclasses.fields(DriftLimits)}


def _limits(doc: dict[str, Any], base: DriftLimits, where: str) -> DriftLimits:
    values: dict[str, float | None] = {}
    for key, value in doc.items():
        if key not in _LIMIT_KEYS:
            raise BadInputError(f"{where}: unknown key {key!r}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise BadInputError(f"{where}.{key}: must be a number >= 0, got {value!r}")
        values[key] = float(value)
    return dataclasses.replace(base, **values)


def parse_drift(doc: dict[str, Any] | None, origin: str = "drift") -> DriftConfig:
    if not doc:
        return DriftConfig()
    if not isinstance(doc, dict):
        raise BadInputError(f"{origin}: must be a table")
    doc = dict(doc)
    columns_doc = doc.pop("columns", {})
    defaults = _limits(doc, DriftLimits(), origin)
    if not isinstance(columns_doc, dict):
        raise BadInputError(f"{origin}.columns: must be a table of column names")
    columns = {}
    for name, sub in columns_doc.items():
        if not isinstance(sub, dict):
            raise BadInputError(f"{origin}.columns.{name}: must be a table")
        columns[name] = _limits(sub, defaults, f"{origin}.columns.{name}")
    return DriftConfig(defaults=defaults, columns=columns)


def parse_checks(doc: dict[str, Any] | None, origin: str = "checks") -> ChecksConfig:
    if not doc:
        return ChecksConfig()
    if not isinstance(doc, dict):
        raise BadInputError(f"{origin}: must be a table")
    known = {f.name for f in dataclasses.fields(ChecksConfig)}
    values: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in known:
            raise BadInputError(f"{origin}: unknown key {key!r}")
        if key == "on_fail":
            if value not in ON_FAIL:
                raise BadInputError(f"{origin}.on_fail: must be 'commit' or 'abort', got {value!r}")
        elif key == "min_rows":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BadInputError(f"{origin}.min_rows: must be an integer >= 0, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise BadInputError(f"{origin}.{key}: must be a number >= 0, got {value!r}")
        values[key] = value
    return ChecksConfig(**values)
