"""Counts and durations as people type them: ``500M`` rows, ``2h`` deadlines."""

from __future__ import annotations

import math
import re

from engine.errors import BadInputError

_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmbg]?)\s*$", re.IGNORECASE)
_COUNT_SCALE = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([hms]?)", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[hms]?\s*)+$", re.IGNORECASE)
_DURATION_SCALE = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_count(text: str, *, flag: str = "--rows") -> int:
    """``"500M"`` -> 500000000. Suffixes k, M, B (G too), any case; a positive whole count.

    Raises
    ------
    BadInputError
        Not a count, or not positive.
    """
    match = _COUNT.match(str(text))
    if not match:
        raise BadInputError(f"{flag} {text!r}: expected a count such as 500M (suffixes k, M, B)")
    value = float(match.group(1)) * _COUNT_SCALE[match.group(2).lower()]
    if value < 1 or value != math.floor(value):
        raise BadInputError(f"{flag} {text!r}: expected a positive whole number")
    return int(value)


def parse_duration(text: str, *, flag: str = "--deadline") -> float:
    """``"2h"`` -> 7200.0; ``"1h30m"``, ``"90m"``, ``"45s"`` and plain seconds too.

    Raises
    ------
    BadInputError
        Not a duration, or not positive.
    """
    text = str(text)
    if not _DURATION.match(text):
        raise BadInputError(f"{flag} {text!r}: expected a duration such as 2h, 90m or 1h30m")
    seconds = sum(
        float(n) * _DURATION_SCALE[unit.lower()] for n, unit in _DURATION_PART.findall(text)
    )
    if seconds <= 0:
        raise BadInputError(f"{flag} {text!r}: expected a positive duration")
    return seconds


def parse_fraction(text: str, *, flag: str = "--headroom") -> float:
    """``"0.3"`` or ``"30%"`` -> 0.3; must lie in [0, 1)."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise BadInputError(f"{flag} {text!r}: expected a fraction such as 0.3 or 30%") from None
    if not 0 <= value < 1:
        raise BadInputError(f"{flag} {text!r}: must be at least 0 and below 1")
    return value


def format_duration(seconds: float) -> str:
    """7290 -> ``"2h01m30s"``; under a minute with one decimal (``"12.5s"``)."""
    if not math.isfinite(seconds):
        return "never"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def format_count(n: float) -> str:
    """500000000 -> ``"500M"``, 1500 -> ``"1.5k"`` (for headings; tables print digits)."""
    for scale, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.4g}{suffix}"
    return f"{n:.4g}"
