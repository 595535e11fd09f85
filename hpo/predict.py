"""`hpo predict`: a saved or pushed model on new data, predictions with scores, metrics when labels exist.

Labels are compared by name (the model's id2label), so string labels in the data round-trip; integer
labels are read as ids of the model's labels when they are not names themselves.
"""

from __future__ import annotations

import collections
import csv
import json
from pathlib import Path
from typing import Any

from hpo.errors import DataError, HubError

TEXT_SUFFIXES = {".csv", ".jsonl", ".json"}


def read_rows(data: Path, *, text_column: str) -> list[dict[str, Any]]:
    """Rows of a csv/jsonl/json file, or one row per non-empty line of any other text file."""
    if not data.is_file():
        raise DataError(f"{data}: no such file", hint="give a csv/jsonl file or a text file with one text per line")
    suffix = data.suffix.lower()
    try:
        if suffix == ".csv":
            with open(data, newline="", encoding="utf-8") as fh:
                return list(csv.DictReader(fh))
        if suffix == ".jsonl":
            lines = data.read_text(encoding="utf-8").splitlines()
            return [json.loads(line) for line in lines if line.strip()]
        if suffix == ".json":
            loaded = json.loads(data.read_text(encoding="utf-8"))
            return loaded if isinstance(loaded, list) else loaded.get("data", [])
        return [{text_column: line} for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (ValueError, UnicodeDecodeError, AttributeError) as e:
        raise DataError(f"{data}: cannot read it as {suffix or 'text'} ({type(e).__name__}: {e})",
                        hint="check the file's format") from None


def _column(rows: list[dict[str, Any]], name: str, data: Path, option: str) -> list[str]:
    if rows and name not in rows[0]:
        raise DataError(f"{data}: no column {name!r}; columns are {', '.join(map(str, rows[0]))}",
                        hint=f"pass {option} with one of them")
    return ["" if r.get(name) is None else str(r[name]) for r in rows]


def _load_pipeline(model: str, max_length: int | None) -> Any:
    import transformers

    from hpo.evaluation import make_pipeline

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    local = Path(model).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise DataError(f"{model}: not a model folder (no config.json)",
                            hint="give a folder written by save_pretrained, e.g. OUTPUT_DIR/best-model")
        return make_pipeline(str(local), max_length=max_length)
    try:
        return make_pipeline(model, max_length=max_length)
    except Exception as e:  # unknown repo, Hub down or offline: all mean the model cannot be fetched
        raise HubError(f"cannot load model {model!r}: neither a folder nor a reachable Hub repo "
                       f"({type(e).__name__})", hint="check the path or repo id, HF_ENDPOINT and HF_TOKEN") from None


def _map_labels(gold: list[str], names: list[str]) -> list[str]:
    known = set(names)
    if all(g in known for g in gold):
        return gold
    if all(g.strip().lstrip("-").isdigit() and 0 <= int(g) < len(names) for g in gold):
        return [names[int(g)] for g in gold]
    return gold  # unknown names stay: they count as errors and get their own row in the confusion matrix


def run_predict(model: str, data: Path, *, text_column: str | list[str] = "text", text_separator: str = " ",
                text_pair_column: str | None = None, label_column: str | None = None, out: Path | None = None,
                max_length: int | None = None) -> dict[str, Any]:
    """Predict `data` with `model`. Several text columns are joined with `text_separator` (as a study's
    text_column list is); `max_length` defaults to the length the model was trained with."""
    from hpo.evaluation import predict, score

    data = Path(data)
    columns = [text_column] if isinstance(text_column, str) else list(text_column)
    rows = read_rows(data, text_column=columns[0])
    if not rows:
        raise DataError(f"{data}: no rows", hint="give a file with at least one text")
    parts = [_column(rows, c, data, "--text-column") for c in columns]
    texts = [text_separator.join(p for p in row if p.strip()) for row in zip(*parts)]
    pairs = _column(rows, text_pair_column, data, "--text-pair-column") if text_pair_column else None
    gold = _column(rows, label_column, data, "--label-column") if label_column else None
    pipe = _load_pipeline(model, max_length)
    predicted, scores = predict(pipe, texts, pairs)
    config = pipe.model.config
    names = [str(config.id2label[i]) for i in sorted(config.id2label)]
    summary: dict[str, Any] = {"model": model, "data": str(data), "rows": len(rows), "max_length": pipe.hpo_max_length,
                               "predicted": dict(collections.Counter(predicted).most_common())}
    if gold is not None:
        gold = _map_labels(gold, names)
        extra = [g for g in dict.fromkeys(gold) if g not in names]
        summary.update(score(predicted, gold, names + extra))
    if out is not None:
        write_predictions(Path(out), texts, pairs, gold, predicted, scores)
        summary["out"] = str(out)
    return summary


def write_predictions(out: Path, texts: list[str], pairs: list[str] | None, gold: list[str] | None,
                      predicted: list[str], scores: list[float]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    header = ["text"] + (["text_pair"] if pairs else []) + (["label"] if gold else []) + ["predicted", "score"]
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for i, text in enumerate(texts):
            w.writerow([text] + ([pairs[i]] if pairs else []) + ([gold[i]] if gold else [])
                       + [predicted[i], f"{scores[i]:.6f}"])
