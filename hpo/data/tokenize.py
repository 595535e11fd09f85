"""Tokenization done once: cached on disk, keyed by the data, the tokenizer and max_length."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets

    from hpo.data.prepare import Splits
    from hpo.tasks import Task


def tokenizer_key(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        text = repr(sorted(tokenizer.get_vocab().items()))
    else:  # truncation/padding are call-time state that changes on use, not part of the tokenizer
        state = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        text = json.dumps(state, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_key(splits: "Splits", tokenizer: Any, max_length: int, task: "Task") -> str:
    options = task.options.model_dump_json()
    text = f"{splits.key}|{tokenizer_key(tokenizer)}|{max_length}|{task.name}|{options}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def tokenize_splits(splits: "Splits", tokenizer: Any, *, max_length: int, cache_dir: Path,
                    task: "Task | None" = None) -> "datasets.DatasetDict":
    """train and validation as input_ids/attention_mask/labels/length, unpadded (padding is per batch).

    Also sets the tokenizer's model_max_length to `max_length`: every model saved with this tokenizer then
    carries the length it was trained on (`hpo predict` and `truncation=True` pipelines truncate there).
    """
    import datasets

    from hpo.tasks import get_task

    task = task or get_task("text-classification")
    tokenizer.model_max_length = max_length
    folder = cache_dir / f"tokenized-{cache_key(splits, tokenizer, max_length, task)}"
    if (folder / "dataset_dict.json").is_file():
        return datasets.load_from_disk(str(folder))
    encode = task.encode_fn(tokenizer, max_length=max_length, label_names=splits.label_names)
    dd = datasets.DatasetDict({"train": splits.train, "validation": splits.validation})
    tokenized = dd.map(encode, batched=True, remove_columns=splits.train.column_names)
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")  # workers sharing output_dir tokenize at once
    shutil.rmtree(tmp, ignore_errors=True)
    tokenized.save_to_disk(str(tmp))
    try:
        tmp.replace(folder)  # atomic: a killed run never leaves a half-written cache behind
    except OSError:
        if not (folder / "dataset_dict.json").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another worker saved the same cache first
    return datasets.load_from_disk(str(folder))
