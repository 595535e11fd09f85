"""Checked, labelled train/validation/test splits: columns, label maps, carving and sub-sampling."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpo.data.sources import load_raw
from hpo.errors import DataError

if TYPE_CHECKING:
    import datasets

    from hpo.spec import LoadedStudy


@dataclass(frozen=True)
class Splits:
    """Train, validation and test with columns text[, text_pair], label (int), and the label names."""

    train: "datasets.Dataset"
    validation: "datasets.Dataset"
    test: "datasets.Dataset"
    label_names: list[str]
    key: str  # changes whenever the rows or labels change
    carved: list[str] = field(default_factory=list)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))

    @property
    def label2id(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.label_names)}

    def summary(self) -> dict[str, Any]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test),
                "labels": self.label_names, "carved_from_train": self.carved}


def prepare_splits(study: "LoadedStudy") -> Splits:
    """The three splits, checked. Test and validation are carved from train (when not given) before any
    sub-sampling, so `train_samples` never shrinks them and never lets a carved row back into train."""
    d = study.spec.dataset
    raw, source_key = load_raw(study)
    cols = d.text_columns + ([d.text_pair_column] if d.text_pair_column else [])
    for split, ds in raw.items():
        _check_columns(study, split, ds, cols + [d.label_column])
        if len(ds) == 0:
            raise DataError(f"the {split} split is empty", file=study.file, path=f"dataset.{split}",
                            hint="point it at a file with rows")
    names, index = _label_map(study, raw)
    splits = {s: _normalize(study, s, ds, names, index) for s, ds in raw.items()}
    carved: list[str] = []
    for split, fraction in (("test", d.test_fraction), ("validation", d.validation_fraction)):
        if split not in splits:
            if len(splits["train"]) * fraction < 1 or len(splits["train"]) * (1 - fraction) < 2:
                raise DataError(f"train has {len(splits['train'])} rows: too few to carve a {split} split "
                                f"({fraction:.0%}) from it", file=study.file, path=f"dataset.{split}",
                                hint=f"give a {split} file or more training rows")
            parts = _split(splits["train"], fraction, d.seed)
            splits["train"], splits[split] = parts["train"], parts["test"]
            carved.append(split)
    for split, n in (("train", d.train_samples), ("validation", d.validation_samples), ("test", d.test_samples)):
        if n is not None and n < len(splits[split]):
            splits[split] = splits[split].shuffle(seed=d.seed).select(range(n))
    if len(set(splits["train"]["label"])) < 2:
        raise DataError("train has a single class; classification needs at least two", file=study.file,
                        path=f"dataset.{d.label_column}", hint="check the label column")
    key_parts = [source_key, json.dumps(d.model_dump(), sort_keys=True, default=str), *names]
    key = hashlib.sha256("|".join(key_parts).encode()).hexdigest()[:16]
    return Splits(splits["train"], splits["validation"], splits["test"], names, key, carved)


def _check_columns(study: "LoadedStudy", split: str, ds: "datasets.Dataset", needed: list[str]) -> None:
    d = study.spec.dataset
    for col in needed:
        if col not in ds.column_names:
            field_name = ("text_column" if col in d.text_columns else
                          "text_pair_column" if col == d.text_pair_column else "label_column")
            raise DataError(f"the {split} split has no column {col!r} (columns: {', '.join(ds.column_names)})",
                            file=study.file, path=f"dataset.{field_name}", hint="name one of its columns")


def _label_map(study: "LoadedStudy", raw: dict[str, "datasets.Dataset"]) -> tuple[list[str], dict[str, int]]:
    """The class names in id order, and each label value (as text) -> its id.

    The classes are the label values present in train: labels 1..4 make four classes, not five.
    """
    d = study.spec.dataset
    train_labels = raw["train"][d.label_column]
    if any(v is None for v in train_labels):
        row = train_labels.index(None)
        raise DataError(f"train row {row + 2 if d.train and d.train.endswith('.csv') else row + 1} has no label",
                        file=study.file, path=f"dataset.{d.label_column}", hint="fill or drop rows without labels")
    values = set(train_labels)
    integer = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    mapping = d.label_names if isinstance(d.label_names, dict) else {}
    negative = [v for v in values if integer and v < 0 and v not in mapping]  # -1 often marks unlabelled rows
    if negative:
        raise DataError(f"integer label {min(negative)} is negative", file=study.file,
                        path=f"dataset.{d.label_column}",
                        hint="drop rows with label -1 (unlabelled), or name it in a label_names mapping")
    present = sorted(values) if integer else sorted(str(v) for v in values)
    if d.label_names is None:
        named = {str(v): str(v) for v in present}
    elif isinstance(d.label_names, dict):
        named = {str(k): n for k, n in sorted(d.label_names.items(), key=lambda kv: _order(kv[0]))}
    elif not integer:
        raise DataError("a list of label_names is for integer labels 0..n-1; these labels are strings",
                        file=study.file, path="dataset.label_names",
                        hint="drop label_names, or map values to names: {value: name}")
    else:
        named = {str(i): n for i, n in enumerate(d.label_names)}
        if present[-1] >= len(named):
            raise DataError(f"label {present[-1]} has no name in label_names ({len(named)} names for labels "
                            f"0..{len(named) - 1})", file=study.file, path="dataset.label_names",
                            hint="give one name per label 0..n-1, or a mapping such as {1: World, 2: Sports} "
                                 "for labels that do not start at 0")
    seen = {str(v) for v in present}
    unnamed = [v for v in map(str, present) if v not in named]
    if unnamed:
        raise DataError(f"label {unnamed[0]} has no name in label_names", file=study.file, path="dataset.label_names",
                        hint=f"add {unnamed[0]}: <name> to the mapping")
    empty = [(v, n) for v, n in named.items() if v not in seen]
    if empty:
        value, name = empty[0]
        raise DataError(f"class {name!r} (label {value}) has no training row", file=study.file,
                        path="dataset.label_names",
                        hint=f"add rows with label {value} to train, or remove {name!r} from label_names"
                             + (" (a mapping {value: name} names only the labels present)"
                                if isinstance(d.label_names, list) else ""))
    for split, ds in raw.items():
        if split == "train":
            continue
        unseen = {str(v) for v in ds[d.label_column]} - seen
        if unseen:
            raise DataError(f"labels in {split} that train never has: {', '.join(sorted(unseen)[:5])}",
                            file=study.file, path=f"dataset.{split}",
                            hint="add examples of them to train or drop those rows")
    return list(named.values()), {v: i for i, v in enumerate(named)}


def _order(value: int | str) -> tuple[int, int | str]:
    """Integers in numeric order, then strings."""
    return (0, value) if isinstance(value, int) else (1, value)


def _normalize(study: "LoadedStudy", split: str, ds: "datasets.Dataset", names: list[str],
               index: dict[str, int]) -> "datasets.Dataset":
    import datasets

    d = study.spec.dataset
    columns = [ds[c] for c in d.text_columns]
    data = {"text": [_text(study, split, i, parts) for i, parts in enumerate(zip(*columns))]}
    if d.text_pair_column:
        data["text_pair"] = [_text(study, split, i, (v,)) for i, v in enumerate(ds[d.text_pair_column])]
    data["label"] = [index[str(v)] for v in ds[d.label_column]]
    features = datasets.Features({k: datasets.Value("string") for k in data if k != "label"})
    features["label"] = datasets.ClassLabel(names=names)
    return datasets.Dataset.from_dict(data, features=features)


def _text(study: "LoadedStudy", split: str, row: int, parts: tuple[Any, ...]) -> str:
    """One text from the row's text columns: the non-empty ones joined with text_separator."""
    kept = [str(v) for v in parts if v is not None and str(v).strip()]
    if not kept:
        raise DataError(f"{split} row {row + 1} has an empty text", file=study.file,
                        path=f"dataset.{split}", hint="drop rows without text")
    return study.spec.dataset.text_separator.join(kept)


def _split(ds: "datasets.Dataset", fraction: float, seed: int) -> "datasets.DatasetDict":
    try:
        return ds.train_test_split(test_size=fraction, seed=seed, stratify_by_column="label")
    except ValueError:  # a class too small to stratify
        return ds.train_test_split(test_size=fraction, seed=seed)
