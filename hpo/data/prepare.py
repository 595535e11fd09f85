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
    d = study.spec.dataset
    raw, source_key = load_raw(study)
    cols = [d.text_column] + ([d.text_pair_column] if d.text_pair_column else [])
    for split, ds in raw.items():
        _check_columns(study, split, ds, cols + [d.label_column])
        if len(ds) == 0:
            raise DataError(f"the {split} split is empty", file=study.file, path=f"dataset.{split}",
                            hint="point it at a file with rows")
    names = _label_names(study, raw)
    splits = {s: _normalize(study, s, ds, cols, names) for s, ds in raw.items()}
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
    for col in needed:
        if col not in ds.column_names:
            field_name = next(k for k in ("text_column", "text_pair_column", "label_column")
                              if getattr(study.spec.dataset, k) == col)
            raise DataError(f"the {split} split has no column {col!r} (columns: {', '.join(ds.column_names)})",
                            file=study.file, path=f"dataset.{field_name}", hint="name one of its columns")


def _label_names(study: "LoadedStudy", raw: dict[str, "datasets.Dataset"]) -> list[str]:
    d = study.spec.dataset
    train_labels = raw["train"][d.label_column]
    if any(v is None for v in train_labels):
        row = train_labels.index(None)
        raise DataError(f"train row {row + 2 if d.train and d.train.endswith('.csv') else row + 1} has no label",
                        file=study.file, path=f"dataset.{d.label_column}", hint="fill or drop rows without labels")
    values = set(train_labels)
    if all(isinstance(v, bool) or not isinstance(v, int) for v in values):
        names = sorted(str(v) for v in values)
        if d.label_names:
            raise DataError("label_names is only for integer labels; these labels are strings",
                            file=study.file, path="dataset.label_names", hint="drop label_names")
    else:
        top = max(int(v) for v in values)
        if min(int(v) for v in values) < 0:
            raise DataError("integer labels must be 0..n-1 (found a negative one)", file=study.file,
                            path=f"dataset.{d.label_column}", hint="drop rows with label -1 (unlabelled)")
        names = list(d.label_names) if d.label_names else [str(i) for i in range(top + 1)]
        if top >= len(names):
            raise DataError(f"label {top} has no name in label_names ({len(names)} names)", file=study.file,
                            path="dataset.label_names", hint="give one name per label 0..n-1")
    for split, ds in raw.items():
        if split == "train":
            continue
        unseen = {str(v) for v in ds[d.label_column]} - ({str(v) for v in values})
        if unseen:
            raise DataError(f"labels in {split} that train never has: {', '.join(sorted(unseen)[:5])}",
                            file=study.file, path=f"dataset.{split}",
                            hint="add examples of them to train or drop those rows")
    return names


def _normalize(study: "LoadedStudy", split: str, ds: "datasets.Dataset", cols: list[str],
               names: list[str]) -> "datasets.Dataset":
    import datasets

    d = study.spec.dataset
    by_name = {n: i for i, n in enumerate(names)}
    integer = names == [str(i) for i in range(len(names))] or d.label_names is not None
    labels = [int(v) if integer and not isinstance(v, str) else by_name[str(v)] for v in ds[d.label_column]]
    data = {"text": [_text(study, split, i, v) for i, v in enumerate(ds[d.text_column])]}
    if d.text_pair_column:
        data["text_pair"] = [_text(study, split, i, v) for i, v in enumerate(ds[d.text_pair_column])]
    data["label"] = labels
    features = datasets.Features({k: datasets.Value("string") for k in data if k != "label"})
    features["label"] = datasets.ClassLabel(names=names)
    return datasets.Dataset.from_dict(data, features=features)


def _text(study: "LoadedStudy", split: str, row: int, value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{split} row {row + 1} has an empty text", file=study.file,
                        path=f"dataset.{split}", hint="drop rows without text")
    return str(value)


def _split(ds: "datasets.Dataset", fraction: float, seed: int) -> "datasets.DatasetDict":
    try:
        return ds.train_test_split(test_size=fraction, seed=seed, stratify_by_column="label")
    except ValueError:  # a class too small to stratify
        return ds.train_test_split(test_size=fraction, seed=seed)
