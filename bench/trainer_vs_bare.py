"""hpo's training loop vs a bare PyTorch loop, epoch for epoch in one process: throughput without drift.

`bench/run.py` compares hpo's trials with a bare loop run in another process minutes later; on this machine
the bare loop alone moves ~9 % between runs. Here both sides train on the same batches in one process,
in alternation (which side goes first swaps each pair), so a slower or faster machine affects both alike.

- hpo: the Trainer hpo builds for `bench/studies/sst2-bench.yaml` (its data, tokenization, collator,
  length-grouped sampler, precision and callbacks), one epoch at the given batch size, a fresh model each
  epoch as in a trial, after two untimed warm-up steps as the bare loop has. Its time is the training loop's (`on_train_begin` to `on_train_end`) less the
  evaluation at the end, as hpo's per-trial profile counts training.
- bare: `bench/bare_loop.py`'s loop (collate, forward, backward, clip, fused AdamW) over one epoch of the
  same length-grouped batches, in the same precision, after untimed warm-up steps.

    python bench/trainer_vs_bare.py                  # batch 16 and 32, 3 pairs each, ~5 min idle
    python bench/trainer_vs_bare.py --batch-sizes 16 --pairs 2 --out /tmp/ab.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
STUDY = BENCH / "studies" / "sst2-bench.yaml"


def hpo_trainer(workdir: Path):
    """The search Trainer exactly as `hpo run` builds it for the benchmark study."""
    os.environ["HPO_STORAGE"] = f"sqlite:///{workdir / 'ab.db'}"
    os.environ["HPO_OUTPUT_DIR"] = str(workdir / "runs")
    from hpo.data import prepare_splits
    from hpo.search.runner import build_context
    from hpo.spec import load_study
    from hpo.study.factory import open_storage

    study = load_study(STUDY)
    return build_context(study, study.spec.models[0], prepare_splits(study), open_storage(study)).trainer


class LoopClock:
    """Times the Trainer's training loop and, inside it, the evaluations."""

    def __init__(self, trainer) -> None:
        from transformers import TrainerCallback

        clock = self
        self.loop, self.evaluation = 0.0, 0.0

        class Callback(TrainerCallback):
            def on_train_begin(self, *args, **kwargs):
                clock.loop, clock.evaluation, clock.started = 0.0, 0.0, time.perf_counter()

            def on_train_end(self, *args, **kwargs):
                clock.loop = time.perf_counter() - clock.started

        evaluate = trainer.evaluate

        def timed_evaluate(*args, **kwargs):
            start = time.perf_counter()
            try:
                return evaluate(*args, **kwargs)
            finally:
                clock.evaluation += time.perf_counter() - start

        trainer.evaluate = timed_evaluate
        trainer.add_callback(Callback())

    @property
    def training(self) -> float:
        return self.loop - self.evaluation


def hpo_epoch(trainer, clock: LoopClock, batch_size: int) -> float:
    """One epoch of hpo's training at this batch size; returns examples per second."""
    trainer.use_configuration({"per_device_train_batch_size": batch_size, "num_train_epochs": 1})  # as a trial does
    trainer.create_accelerator_and_postprocess()  # building arguments resets accelerate's state; a trial's set-up does this
    trainer.train()
    return len(trainer.train_dataset) / clock.training


def bare_epoch(runner) -> float:
    runner.done, runner.seconds, runner.examples, runner.tokens = 0, 0.0, 0, 0
    while not runner.finished:
        runner.timed_step()
    return runner.examples / runner.seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--pairs", type=int, default=3, help="hpo/bare epoch pairs per batch size")
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(BENCH))
    import bare_loop
    from transformers import AutoTokenizer, DataCollatorWithPadding
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    bare_loop.set_threads()
    with tempfile.TemporaryDirectory(prefix="hpo-ab-") as tmp:
        trainer = hpo_trainer(Path(tmp))
        clock = LoopClock(trainer)
        precision = "bf16" if trainer.args.bf16 else "fp32"
        folder = bare_loop.model_folder()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        rows = bare_loop.load_train(tokenizer, len(trainer.train_dataset))
        print(f"{len(rows)} sentences, {precision}, {args.pairs} pairs of epochs per batch size, "
              "alternating which side goes first", flush=True)
        results = []
        for bs in args.batch_sizes:
            runner = bare_loop.Runner(folder, rows, DataCollatorWithPadding(tokenizer), batch_size=bs,
                                      grouping="length", precision=precision, steps=None, warmup=2)
            for b in runner.warm:
                runner.step(b)
            trainer.args.max_steps = 2  # hpo's warm-up, untimed like the bare loop's
            hpo_epoch(trainer, clock, bs)
            trainer.args.max_steps = -1
            pairs = []
            for i in range(args.pairs):
                if i % 2 == 0:
                    bare, hpo = bare_epoch(runner), hpo_epoch(trainer, clock, bs)
                else:
                    hpo, bare = hpo_epoch(trainer, clock, bs), bare_epoch(runner)
                pairs.append({"hpo_examples_per_s": round(hpo, 2), "bare_examples_per_s": round(bare, 2),
                              "hpo_vs_bare": round(hpo / bare, 3)})
                print(f"batch {bs:>3} pair {i + 1}: hpo {hpo:6.1f} ex/s, bare {bare:6.1f} ex/s -> "
                      f"{hpo / bare:.3f}", flush=True)
            ratios = [p["hpo_vs_bare"] for p in pairs]
            results.append({"batch_size": bs, "pairs": pairs, "median_hpo_vs_bare": statistics.median(ratios)})
            print(f"batch {bs:>3}: hpo/bare median {statistics.median(ratios):.3f} "
                  f"(range {min(ratios):.3f}-{max(ratios):.3f}; target >= 0.95)", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"precision": precision, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
