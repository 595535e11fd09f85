"""Helpers for the task tests: slices of ../shared/data, a tiny base model, a short Trainer run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_rows(name: str, split: str, n: int) -> list[dict[str, Any]]:
    """The first n rows of a JSONL split of ../shared/data/NAME."""
    rows = []
    with open(SHARED / name / f"{split}.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if len(rows) == n:
                break
            rows.append(json.loads(line))
    return rows


def to_dataset(rows: list[dict[str, Any]]) -> Any:
    import datasets

    return datasets.Dataset.from_list(rows)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def tiny_base(folder: Path, texts: list[str], *, vocab_size: int = 400, hidden: int = 16) -> Path:
    """A tiny BERT (word-level vocabulary from `texts`) saved with its tokenizer: the base model."""
    from hpo.testing.tiny import build_tiny_model

    return build_tiny_model(folder, texts, vocab_size=vocab_size, hidden=hidden)


def train_briefly(task: Any, base: Path, prepared: Any, out: Path, *, max_steps: int = 40,
                  learning_rate: float = 5e-3, max_length: int = 48) -> tuple[Any, float, float]:
    """Train the task's head on the base model with a transformers Trainer, save model and tokenizer to
    `out`; return the trainer and the validation loss before and after training."""
    import datasets
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(base)
    encode = task.encode_fn(tokenizer, max_length=max_length, label_names=prepared.label_names)
    dd = datasets.DatasetDict({s: prepared.splits[s] for s in ("train", "validation")})
    tokenized = dd.map(encode, batched=True, remove_columns=prepared.splits["train"].column_names)
    args = TrainingArguments(output_dir=str(out / "scratch"), max_steps=max_steps, learning_rate=learning_rate,
                             per_device_train_batch_size=16, per_device_eval_batch_size=64, report_to=[],
                             disable_tqdm=True, save_strategy="no", logging_strategy="no", eval_strategy="no",
                             use_cpu=True, seed=0, dataloader_num_workers=0)
    trainer = Trainer(model=task.load_model(str(base), prepared.label_names), args=args,
                      train_dataset=tokenized["train"], eval_dataset=tokenized["validation"],
                      data_collator=task.collator(tokenizer), processing_class=tokenizer,
                      compute_metrics=task.compute_metrics_fn(prepared.label_names))
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()
    trainer.last_metrics = after
    trainer.save_model(str(out))
    return trainer, before, after["eval_loss"]
