"""Results + study -> model card (best-model/README.md), report.md, self-contained report.html and plots.

Pure: reads results.json's dict and the study storage, writes only into the output folder, no network.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.report import html, markdown, sections
from hpo.report.card import body_blocks, build_card, model_ref
from hpo.report.selection import selection

if TYPE_CHECKING:
    from hpo.spec import LoadedStudy

PLOTS_DIR = "plots"


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _load_studies(study: "LoadedStudy", storage: Any) -> dict[str, Any]:
    from hpo.report.facts import short_model
    from hpo.study.factory import load_existing

    found = {}
    for model in study.spec.models:
        s = load_existing(study, model, storage)
        if s is not None:
            found[short_model(model)] = s
    return found


def report_blocks(study: "LoadedStudy", results: dict[str, Any], images: list[tuple[str, str]],
                  skipped: list[str]) -> list[Any]:
    title = f"Study report: {results['study']}"
    blocks = body_blocks(results, study.spec, model_ref=model_ref(study), title=title)
    at = next(i for i, b in enumerate(blocks) if getattr(b, "text", None) == "Training data")
    figures = [(f"{PLOTS_DIR}/{name}", caption) for name, caption in images]
    return [*blocks[:at], *selection(results), *sections.plots(figures, skipped), *sections.trials(results),
            *blocks[at:]]


def write_report(study: "LoadedStudy", results: dict[str, Any], storage: Any) -> list[Path]:
    """Write the card, report.md, report.html and plots/*.png; return the paths written."""
    out = study.paths.output_dir
    card_path = Path(results["final"]["path"]) / "README.md"
    card = build_card(study, results)
    _write_text(card_path, str(card))

    from hpo.report.plots import write_plots

    images, skipped = write_plots(_load_studies(study, storage), out / PLOTS_DIR,
                                  metric=results["objective"]["metric"], points=results["final"].get("points"))
    blocks = report_blocks(study, results, images, skipped)
    md_path, html_path = out / "report.md", out / "report.html"
    _write_text(md_path, markdown.render(blocks))
    _write_text(html_path, html.render(blocks, base=out, title=f"hpo report: {results['study']}"))
    return [card_path, md_path, html_path, *[out / PLOTS_DIR / name for name, _ in images]]
