"""Durations as people write them: "30m", "1h30m", "90s", "2h", or a number of seconds."""

from __future__ import annotations

import re
from typing import Any

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s)")
_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[hms]\s*)+$")
UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
EXAMPLE = "write e.g. 30m, 1h30m, 90s or a number of seconds"


def parse_duration(value: Any) -> float:
    """Seconds (> 0) from a number or a string of h/m/s parts; ValueError naming what is wrong otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"a duration is not true/false; {EXAMPLE}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            if not _WHOLE.match(text):
                raise ValueError(f"{value!r} is not a duration; {EXAMPLE}") from None
            seconds = sum(float(n) * UNITS[u] for n, u in _PART.findall(text))
    else:
        raise ValueError(f"a duration is a number of seconds or a string; {EXAMPLE}")
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"a duration must be a finite time over 0 seconds, got {value!r}; {EXAMPLE}")
    return seconds


def format_duration(seconds: float) -> str:
    """1h05m, 4m30s, 45s: what a person reads at a glance."""
    s = max(0, int(round(seconds)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s" if s % 60 else f"{s // 60}m"
    return f"{s}s"
