"""Blocks -> one self-contained HTML page: styles inline, images embedded as base64 data URLs."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any, Sequence

from hpo.report.blocks import Block, Bullets, Code, Heading, Image, Para, Table, fmt
from hpo.report.markdown import _numeric

STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;max-width:980px;
     margin:2em auto;padding:0 1.2em}
h1{font-size:1.9em;border-bottom:1px solid #d0d7de;padding-bottom:.3em}
h2{font-size:1.4em;margin-top:1.8em;border-bottom:1px solid #eaeef2;padding-bottom:.2em}
h3{font-size:1.1em;margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:14px}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
caption{caption-side:top;text-align:left;font-style:italic;color:#57606a;padding-bottom:4px}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:1px 4px;border-radius:4px}
pre{background:#f6f8fa;padding:10px 14px;border-radius:6px;overflow-x:auto}
pre code{padding:0;background:none}
figure{margin:1em 0}
img{max-width:100%;border:1px solid #eaeef2}
figcaption{color:#57606a;font-size:13px}
"""


def inline(text: str) -> str:
    """Escape, then turn `code` and **bold** into tags."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _cell(value: Any, tag: str, numeric: bool) -> str:
    text = value if isinstance(value, str) else fmt(value)
    cls = ' class="num"' if numeric and tag == "td" else ""
    return f"<{tag}{cls}>{inline(text)}</{tag}>"


def render_table(t: Table) -> str:
    numeric = [i > 0 and _numeric(t.rows, i) for i in range(len(t.headers))]
    caption = f"<caption>{inline(t.caption)}</caption>" if t.caption else ""
    head = "".join(_cell(h, "th", False) for h in t.headers)
    body = "".join(
        "<tr>" + "".join(_cell(c, "th" if i == 0 and t.first_column_header else "td", numeric[i])
                         for i, c in enumerate(row)) + "</tr>" for row in t.rows)
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def render(blocks: Sequence[Block], *, base: Path, title: str) -> str:
    parts: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{inline(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            parts.append(f"<p>{inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            parts.append(render_table(b))
        elif isinstance(b, Code):
            parts.append(f"<pre><code>{html.escape(b.text.rstrip())}</code></pre>")
        elif isinstance(b, Image):
            parts.append(f'<figure><img src="{data_url(base / b.path)}" alt="{html.escape(b.alt)}">'
                         f"<figcaption>{inline(b.alt)}</figcaption></figure>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
