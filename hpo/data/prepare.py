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
    """Train, validation and test in the task's canonical columns (text[, text_pair], label for text tasks;
    tokens, tags for token classification), and the label names."""

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
    """The three splits, checked by the study's task. Test and validation are carved from train (when not
    given) before any sub-sampling, so `train_samples` never shrinks them and never lets a carved row back
    into train."""
    from hpo.tasks import Where

    d, task = study.spec.dataset, study.task
    raw, source_key = load_raw(study)
    for split, ds in raw.items():
        if len(ds) == 0:
            raise DataError(f"the {split} split is empty", file=study.file, path=f"dataset.{split}",
                            hint="point it at a file with rows")
    header = {s: 1 for s in raw if str(getattr(d, s, None) or "").lower().endswith(".csv")}
    prepared = task.prepare(raw, where=Where(study.file, header))
    splits, names = dict(prepared.splits), prepared.label_names
    carved: list[str] = []
    for split, fraction in (("test", d.test_fraction), ("validation", d.validation_fraction)):
        if split not in splits:
            if len(splits["train"]) * fraction < 1 or len(splits["train"]) * (1 - fraction) < 2:
                raise DataError(f"train has {len(splits['train'])} rows: too few to carve a {split} split "
                                f"({fraction:.0%}) from it", file=study.file, path=f"dataset.{split}",
                                hint=f"give a {split} file or more training rows")
            parts = _split(splits["train"], fraction, d.seed, prepared.stratify)
            splits["train"], splits[split] = parts["train"], parts["test"]
            carved.append(split)
    for split, n in (("train", d.train_samples), ("validation", d.validation_samples), ("test", d.test_samples)):
        if n is not None and n < len(splits[split]):
            splits[split] = splits[split].shuffle(seed=d.seed).select(range(n))
    key_parts = [source_key, study.spec.task, json.dumps(d.model_dump(), sort_keys=True, default=str), *names]
    key = hashlib.sha256("|".join(key_parts).encode()).hexdigest()[:16]
    return Splits(splits["train"], splits["validation"], splits["test"], names, key, carved)


def _split(ds: "datasets.Dataset", fraction: float, seed: int, stratify: str | None) -> "datasets.DatasetDict":
    if stratify:
        try:
            return ds.train_test_split(test_size=fraction, seed=seed, stratify_by_column=stratify)
        except ValueError:  # a class too small to stratify
            pass
    return ds.train_test_split(test_size=fraction, seed=seed)
