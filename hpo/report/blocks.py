"""The report as a list of blocks, rendered both to Markdown (card, report.md) and to HTML (report.html).

One document model for both outputs keeps their content identical and needs no Markdown library.
Inline text may use `code` and **bold**, which both renderers understand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[Any]]
    caption: str | None = None
    first_column_header: bool = field(default=False)  # e.g. the gold label of a confusion matrix


@dataclass(frozen=True)
class Code:
    text: str
    lang: str = ""


@dataclass(frozen=True)
class Image:
    path: str  # relative to the output folder
    alt: str


Block = Union[Heading, Para, Bullets, Table, Code, Image]


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers as a reader wants them: metrics with 4 decimals, tiny or huge values in g-format."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits > 4 else f"{value:.{digits}f}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def seconds(value: float | None) -> str | None:
    """A table cell of seconds: one decimal is all a reader needs."""
    return None if value is None else f"{float(value):,.1f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
