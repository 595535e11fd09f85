"""The study file reference as Markdown tables, made from the schema: `python -m hpo.spec.reference`.

README.md carries this output between markers (`--write README.md` refreshes it); a test keeps the two equal.
"""

from __future__ import annotations

import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from hpo.spec.schema import StudySpec

BEGIN, END = "<!-- reference:begin -->", "<!-- reference:end -->"


def _sections(model: type[BaseModel], prefix: str = "") -> list[tuple[str, type[BaseModel]]]:
    out = [(prefix.rstrip(".") or "top level", model)]
    for name, field in model.model_fields.items():
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        sub = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if sub is not None:
            out += _sections(sub, f"{prefix}{name}.")
    return out


def _default(field: typing.Any) -> str:
    if field.default is PydanticUndefined:
        return "required" if field.default_factory is None else "see below" if field.default_factory not in (
            list, dict) else "`[]`" if field.default_factory is list else "`{}`"
    return f"`{field.default}`"


def _allowed(annotation: typing.Any) -> str:
    literals = [a for a in (annotation, *typing.get_args(annotation)) if typing.get_origin(a) is typing.Literal]
    return ", ".join(f"`{v}`" for lit in literals for v in typing.get_args(lit))


def markdown() -> str:
    lines = []
    for title, model in _sections(StudySpec):
        prefix = "" if title == "top level" else f"{title}."
        lines += [f"**{title}**", "", "| key | default | allowed | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            desc = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{prefix}{name}` | {_default(field)} | {_allowed(field.annotation)} | {desc} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def update(path: str) -> None:
    """Replace the reference between the markers in `path` (the README)."""
    with open(path) as fh:
        text = fh.read()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    with open(path, "w") as fh:
        fh.write(text[:start] + "\n" + markdown() + text[end:])


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:
        update(sys.argv[2] if len(sys.argv) > 2 else "README.md")
    else:
        print(markdown(), end="")
