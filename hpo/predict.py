"""`hpo predict`: a saved or pushed model on new data, predictions with scores, metrics when labels exist.

Labels are compared by name (the model's id2label), so string labels in the data round-trip; integer
labels are read as ids of the model's labels when they are not names themselves.
"""

from __future__ import annotations

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


def _load_config(model: str) -> Any:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    local = Path(model).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise DataError(f"{model}: not a model folder (no config.json)",
                            hint="give a folder written by save_pretrained, e.g. OUTPUT_DIR/best-model")
        model = str(local)
    try:
        return model, transformers.AutoConfig.from_pretrained(model)
    except Exception as e:  # unknown repo, Hub down or offline: all mean the model cannot be fetched
        raise HubError(f"cannot load model {model!r}: neither a folder nor a reachable Hub repo "
                       f"({type(e).__name__})", hint="check the path or repo id, HF_ENDPOINT and HF_TOKEN") from None


def trained_length(model: str) -> int:
    """The length hpo trained with (the tokenizer's model_max_length), else the tokenizer's maximum (512 when
    it has none)."""
    from transformers import AutoTokenizer

    length = getattr(AutoTokenizer.from_pretrained(model), "model_max_length", 512) or 512
    return 512 if length > 4096 else int(length)


def _map_labels(gold: list[str], names: list[str]) -> list[str]:
    known = set(names)
    if all(g in known for g in gold):
        return gold
    if all(g.strip().lstrip("-").isdigit() and 0 <= int(g) < len(names) for g in gold):
        return [names[int(g)] for g in gold]
    return gold  # unknown names stay: they count as errors and get their own row in the confusion matrix


def run_predict(model: str, data: Path, *, text_column: str | list[str] = "text", text_separator: str = " ",
                text_pair_column: str | None = None, label_column: str | None = None, out: Path | None = None,
                max_length: int | None = None, label_separator: str | None = None) -> dict[str, Any]:
    """Predict `data` with `model`, as the task the model was trained for (its config says which). Several
    text columns are joined with `text_separator` (as a study's text_column list is); `max_length` defaults
    to the length the model was trained with. Token classification reads `text_column` as the words (a list,
    or a string split on spaces) and `label_column` as their tags."""
    from hpo.tasks import Columns, task_class, task_of_model

    data = Path(data)
    columns = [text_column] if isinstance(text_column, str) else list(text_column)
    rows = read_rows(data, text_column=columns[0])
    if not rows:
        raise DataError(f"{data}: no rows", hint="give a file with at least one text")
    for name, option in [*((c, "--text-column") for c in columns), (text_pair_column, "--text-pair-column"),
                         (label_column, "--label-column")]:
        if name:
            _column(rows, name, data, option)
    if len(columns) > 1:
        parts = [_column(rows, c, data, "--text-column") for c in columns]
        for row, texts in zip(rows, zip(*parts)):
            row[JOINED] = text_separator.join(p for p in texts if p.strip())
    source, config = _load_config(model)
    name = task_of_model(config)
    task = task_class(name).for_predict(Columns(text=JOINED if len(columns) > 1 else columns[0],
                                                text_pair=text_pair_column, label=label_column or ""),
                                        label_separator=label_separator)
    length = max_length or trained_length(source)
    result = task.predict(source, rows, max_length=length)
    summary: dict[str, Any] = {"model": model, "data": str(data), "task": name, "rows": len(rows),
                               "max_length": length, **{k: v for k, v in result["summary"].items() if k != "rows"},
                               **{k: v for k, v in result.items() if k not in ("rows", "summary")}}
    if out is not None:
        write_predictions(Path(out), result["rows"])
        summary["out"] = str(out)
    return summary


JOINED = "\0text"  # the joined text of several --text-columns, a key no file has
FIRST = ["text", "text_pair", "tokens", "label", "labels", "tags", "predicted", "score"]


def write_predictions(out: Path, rows: list[dict[str, Any]]) -> None:
    """csv when every value is a plain one; JSONL when rows hold lists (words, tags, label sets) or out ends in
    .jsonl."""
    out.parent.mkdir(parents=True, exist_ok=True)
    nested = any(isinstance(v, (list, dict)) for r in rows for v in r.values())
    if nested or out.suffix.lower() == ".jsonl":
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    header = [k for k in FIRST if k in keys] + [k for k in keys if k not in FIRST]
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            w.writerow([f"{r[k]:.6f}" if isinstance(r.get(k), float) else r.get(k) for k in header])
