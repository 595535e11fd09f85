"""Blocks -> Markdown (GitHub/Hub flavour): the model card body and report.md."""

from __future__ import annotations

from typing import Any, Sequence

from hpo.report.blocks import Block, Bullets, Code, Heading, Image, Para, Table, fmt


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else fmt(value)
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(t: Table) -> str:
    lines = [f"*{t.caption}*", ""] if t.caption else []
    lines.append("| " + " | ".join(_cell(h) for h in t.headers) + " |")
    align = ["---" if i == 0 else "---:" if _numeric(t.rows, i) else "---" for i in range(len(t.headers))]
    lines.append("| " + " | ".join(align) + " |")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines)


def _numeric(rows: list[list[Any]], i: int) -> bool:
    values = [r[i] for r in rows if i < len(r) and r[i] is not None]
    return bool(values) and all(_is_number(v) for v in values)


def _is_number(v: Any) -> bool:
    if isinstance(v, str):  # pre-formatted numbers, e.g. seconds with one decimal
        try:
            float(v.replace(",", ""))
        except ValueError:
            return False
        return True
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def render(blocks: Sequence[Block]) -> str:
    parts: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            parts.append(b.text)
        elif isinstance(b, Bullets):
            parts.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Table):
            parts.append(render_table(b))
        elif isinstance(b, Code):
            parts.append(f"```{b.lang}\n{b.text.rstrip()}\n```")
        elif isinstance(b, Image):
            parts.append(f"![{b.alt}]({b.path})")
    return "\n\n".join(parts) + "\n"
