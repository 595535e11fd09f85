"""Any text-classification data set as the benchmark's three split files, the same rows for both sides.

`--data` is a csv/jsonl/json/parquet file, or a folder holding train/validation/test files. Splits it lacks are
carved from train (seeded: validation 10 %, test 20 %), then each split is sub-sampled (`shuffle(seed=0)
.select(range(n))`), and written as `text[,text_pair],label` csv files that the notebook baseline and hpo both
read as they are. A label column of lists (multi-label data such as GoEmotions) is reduced to single-label:
the rows with exactly one label keep it, the others are left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")
SPLITS = ("train", "validation", "test")


def _read(path: Path) -> Any:
    import datasets

    kind = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}[path.suffix]
    return datasets.load_dataset(kind, data_files=str(path), split="train")


def _files(data: Path) -> dict[str, Path]:
    if data.is_file():
        if data.suffix not in SUFFIXES:
            raise SystemExit(f"--data {data}: not a {', '.join(SUFFIXES)} file")
        return {"train": data}
    found = {}
    for split in SPLITS:
        hits = [data / f"{split}{s}" for s in SUFFIXES if (data / f"{split}{s}").is_file()]
        if hits:
            found[split] = hits[0]
    if "train" not in found:
        raise SystemExit(f"--data {data}: no train file ({', '.join('train' + s for s in SUFFIXES)})")
    return found


def _columns(ds: Any, text: str, pair: str | None, label: str, where: Path) -> Any:
    for column in (text, pair, label):
        if column is not None and column not in ds.column_names:
            raise SystemExit(f"--data {where}: no column {column!r}; it has {', '.join(ds.column_names)}")
    keep = {"text": [str(t) for t in ds[text]], "label": ds[label]}
    if pair is not None:
        keep["text_pair"] = [str(t) for t in ds[pair]]
    return keep


def _single_label(rows: dict[str, list[Any]]) -> tuple[dict[str, list[Any]], int]:
    """Rows whose label is a list keep it when it has exactly one entry; the others go."""
    if not any(isinstance(v, list) for v in rows["label"]):
        return rows, 0
    keep = [i for i, v in enumerate(rows["label"]) if isinstance(v, list) and len(v) == 1]
    out = {k: [vs[i] for i in keep] for k, vs in rows.items()}
    out["label"] = [v[0] for v in out["label"]]
    return out, len(rows["label"]) - len(keep)


def prepare(data: Path, out: Path, *, text_column: str, label_column: str, text_pair_column: str | None,
            sizes: dict[str, int | None], seed: int = 0) -> dict[str, Any]:
    """Write out/{train,validation,test}.csv; return their row counts, labels and what was dropped."""
    import datasets

    datasets.disable_progress_bars()
    files = _files(data)
    tables, dropped = {}, 0
    for split, path in files.items():
        rows, lost = _single_label(_columns(_read(path), text_column, text_pair_column, label_column, path))
        dropped += lost
        rows["label"] = [str(v) for v in rows["label"]]
        tables[split] = datasets.Dataset.from_dict(rows)
    if "test" not in tables:
        parts = tables["train"].train_test_split(test_size=0.2, seed=seed)
        tables["train"], tables["test"] = parts["train"], parts["test"]
    if "validation" not in tables:
        parts = tables["train"].train_test_split(test_size=0.1 / 0.8 if "test" not in files else 0.1, seed=seed)
        tables["train"], tables["validation"] = parts["train"], parts["test"]
    labels = sorted(set(tables["train"]["label"]))
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLITS:
        ds = tables[split].filter(lambda r: r["label"] in labels) if split != "train" else tables[split]
        n = sizes.get(split)
        if n is not None and n < len(ds):
            ds = ds.shuffle(seed=0).select(range(n))
        ds.to_csv(str(out / f"{split}.csv"), index=False)
        counts[split] = len(ds)
    return {"source": str(data), "rows": counts, "labels": labels, "multi_label_rows_dropped": dropped,
            "carved": [s for s in SPLITS if s not in files]}


def study_for(template: dict[str, Any], folder: Path, *, pair: bool) -> dict[str, Any]:
    """The bench study file (its search and training) on the prepared files."""
    doc = dict(template)
    doc["dataset"] = {"train": str(folder / "train.csv"), "validation": str(folder / "validation.csv"),
                      "test": str(folder / "test.csv"), "text_column": "text", "label_column": "label",
                      "max_length": template.get("dataset", {}).get("max_length", 128), "seed": 0,
                      **({"text_pair_column": "text_pair"} if pair else {})}
    return doc
