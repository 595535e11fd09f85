"""The Trainer used by the search, and what it changes in the stock one:

- a trial's configuration is put into the arguments before `train()` reads them (it seeds, builds the model
  and hooks NEFTune before the stock trial setup), through the same step a Trainer built for a configuration
  takes (`setup.training_arguments`): searched values keep their declared type, fields whose default is None
  can be searched, and what the Trainer reads from its arguments once (batch size, NEFTune, label smoothing)
  follows;
- evaluation on a grid of several points per epoch, reported to the pruner in percent of an epoch, so
  trials with other batch sizes or epochs are compared at the same point of training; only the grid
  points where the pruner can decide are evaluated (`DecisionPoints`);
- an evaluation at the very end, so the trial's value is the trained model's;
- `group_by_length` batches in random order (`LengthBucketSampler`), not the Trainer's long-to-short sweeps;
  evaluation rows in the order hpo gives them (sorted by length), not regrouped by the Trainer;
- per-trial user attrs for optuna-dashboard (metrics, timings, worker) and the models of the best trials kept
  (a running trial's model is never removed by another worker);
- each trial's model, optimizer and data loaders freed when it ends and before the next is built, and out
  of memory ending the trial as FAIL with one line (`memory.py`).
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from torch.utils.data import SequentialSampler
from transformers import Seq2SeqTrainer, Trainer, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from hpo import interrupts, upstream
from hpo.adapters import save_model
from hpo.search import memory
from hpo.results import read_json, write_json
from hpo.search.batches import LengthBucketSampler
from hpo.study.workers import worker_id

if TYPE_CHECKING:
    import optuna

    from hpo.study.factory import DecisionPoints

PROGRESS_UNIT = 100  # pruning steps per epoch
KEPT_MARKER = "hpo-trial.json"  # in a kept model's folder: which study (in its store) and trial it is


class EvaluationPoints(TrainerCallback):
    """During a trial: evaluate at the end, and on the evaluation grid only where the pruner can decide."""

    def __init__(self, trainer: "SearchTrainer") -> None:
        self.trainer = trainer

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        t = self.trainer
        if upstream.current_trial(t) is None:  # a training outside the search is scored afterwards, by whoever asked for it
            return control
        if state.global_step >= state.max_steps:
            control.should_evaluate = True
        elif control.should_evaluate:
            # a grid point in the last slot is the end, evaluated once, at the last step; a slot reported
            # already (steps per epoch not divisible by the grid) is not evaluated twice
            progress = t._progress()
            control.should_evaluate = not t._at_end() and progress not in t.reported and t.points.wanted(
                progress, max(t.reported, default=None))
        return control


class SearchTrainer(Trainer):
    def __init__(self, *args: Any, configure: Callable[[dict[str, Any]], Any], evals_per_epoch: int,
                 points: "DecisionPoints", objective_key: str, direction: str, checkpoints: Path | None,
                 keep_checkpoints: int, n_trials: int, pruning_eval_dataset: Any = None, **kwargs: Any) -> None:
        self.profile: dict[str, float] = {}  # per trial; the base class calls call_model_init from __init__
        super().__init__(*args, **kwargs)
        self.configure = configure  # a configuration's values -> TrainingArguments
        self.pruning_eval_dataset = pruning_eval_dataset
        self.evals_per_epoch, self.points = evals_per_epoch, points
        self.objective_key, self.direction = objective_key, direction
        self.checkpoints, self.keep_checkpoints, self.n_trials = checkpoints, keep_checkpoints, n_trials
        self.reported: set[int] = set()
        self.add_callback(EvaluationPoints(self))

    # -- trial setup ---------------------------------------------------------------------------
    def use_configuration(self, params: dict[str, Any]) -> None:
        """Make the arguments `train()` holds what a Trainer built for this configuration has."""
        from transformers.trainer_pt_utils import LabelSmoother

        built = self.configure(params)
        for key in params:
            setattr(self.args, key, getattr(built, key))
        # what the Trainer reads from its arguments once, when it is built
        upstream.set_train_batch_size(self, self.args.train_batch_size)
        self.neftune_noise_alpha = self.args.neftune_noise_alpha
        factor = self.args.label_smoothing_factor
        self.label_smoother = LabelSmoother(epsilon=factor) if factor else None

    def _hp_search_setup(self, trial: Any) -> None:
        super()._hp_search_setup(trial)  # sets again the values use_configuration put in: a no-op cast now
        if trial is not None and self.train_dataset is not None:
            per_step = self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps
            steps_per_epoch = max(1, math.ceil(len(self.train_dataset) / per_step))
            self.args.eval_steps = max(1, steps_per_epoch // self.evals_per_epoch)
            self.args.logging_steps = self.args.eval_steps

    def call_model_init(self, trial: Any = None) -> Any:
        start = time.perf_counter()
        self.reported: set[int] = set()
        model = super().call_model_init(trial)
        self.profile["model_load"] = time.perf_counter() - start
        return model

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        data = self.train_dataset if train_dataset is None else train_dataset
        columns = getattr(data, "column_names", None) or ()
        if self.args.train_sampling_strategy != "group_by_length" or "input_ids" not in columns:
            return super()._get_train_sampler(train_dataset)
        # from input_ids: the Trainer hands over the rows without the columns the model does not take ("length")
        lengths = [len(ids) for ids in data["input_ids"]]
        return LengthBucketSampler(lengths, self.args.train_batch_size * self.args.gradient_accumulation_steps)

    def _get_eval_sampler(self, eval_dataset: Any) -> Any:
        sampler = super()._get_eval_sampler(eval_dataset)
        if isinstance(sampler, LengthGroupedSampler) and self.args.world_size <= 1:
            # group_by_length also regroups evaluation rows in seeded random mega-batches, which pads most
            # batches to near the longest row; hpo's evaluation sets come sorted by length (setup.by_length)
            return SequentialSampler(eval_dataset)
        return sampler

    # -- evaluation and pruning ------------------------------------------------------------------
    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        start = time.perf_counter()
        if self.pruning_eval_dataset is not None and not args and kwargs.get("eval_dataset") is None \
                and upstream.current_trial(self) is not None and not self._at_end():
            kwargs["eval_dataset"] = self.pruning_eval_dataset  # pruning points; the trial's value uses all rows
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self.profile["evaluation"] = self.profile.get("evaluation", 0.0) + time.perf_counter() - start
            scored = next((d for d in (*args[:1], kwargs.get("eval_dataset")) if d is not None), self.eval_dataset)
            self.profile["eval_rows"] = self.profile.get("eval_rows", 0) + len(scored or ())  # for budget plans

    def _report_to_hp_search(self, trial: Any, step: int, metrics: dict[str, float]) -> None:
        if self.hp_search_backend is None or trial is None:  # a plain training (final retrain, seed reruns)
            return
        start = time.perf_counter()
        # Snap to the evaluation grid, so trials whose epochs split into other step counts report the
        # same points and the pruner compares them (it only compares equal steps).
        progress = self._progress()
        if trial is not None and hasattr(trial, "set_user_attr"):
            trial.set_user_attr("metrics", _clean(metrics))
            trial.set_user_attr("progress", progress)
        try:
            if progress in self.reported or self._at_end():
                # A second evaluation in one slot keeps its value, reported once; and a trial that has
                # trained to the end is not pruned: stopping it would save nothing.
                self.objective = self.compute_objective(metrics.copy())
                if progress not in self.reported and _single_objective(trial):
                    trial.report(self.objective, progress)
                self.reported.add(progress)
            else:
                self.reported.add(progress)
                super()._report_to_hp_search(trial, progress, metrics)
        finally:
            self.profile["reporting"] = self.profile.get("reporting", 0.0) + time.perf_counter() - start

    def _slot(self) -> int:
        """The grid point (evals_per_epoch per epoch) nearest to where training is."""
        return round((self.state.epoch or 0.0) * self.evals_per_epoch)

    def _progress(self) -> int:
        return self._slot() * PROGRESS_UNIT // self.evals_per_epoch

    def _at_end(self) -> bool:
        """The last evaluation, or one that snaps to the last slot: pruning there would save nothing."""
        if self.state.max_steps > 0 and self.state.global_step >= self.state.max_steps:
            return True
        epochs = self.state.num_train_epochs or 0
        return epochs > 0 and self._slot() >= round(epochs * self.evals_per_epoch)

    # -- the trial as a whole ----------------------------------------------------------------------
    def train(self, *args: Any, trial: Any = None, **kwargs: Any) -> Any:
        if trial is None or not hasattr(trial, "study"):
            return super().train(*args, trial=trial, **kwargs)
        _refuse_surplus(trial, self.n_trials)  # before sampling: a surplus trial draws nothing
        upstream.record_first_heartbeat(trial)
        trial.set_user_attr("worker", worker_id())
        start = time.perf_counter()
        self.profile = {"model_load": 0.0, "evaluation": 0.0, "reporting": 0.0, "checkpoint": 0.0}
        memory.trial_started(self, trial)
        try:
            self.use_configuration(self.hp_space(trial))
            with interrupts.interruptible():  # what follows training is quick and lets the trial finish
                out = memory.fail_on_out_of_memory(
                    self, trial, lambda: super(SearchTrainer, self).train(*args, trial=trial, **kwargs))
            self.profile["train_total"] = time.perf_counter() - start
            self._keep_if_best(trial)
            return out
        finally:
            self._record_profile(trial, time.perf_counter() - start)
            memory.trial_ended(self, trial)

    def _record_profile(self, trial: "optuna.Trial", wall: float) -> None:
        p = self.profile
        total = p.get("train_total", wall)
        p["training"] = max(0.0, total - p["model_load"] - p["evaluation"] - p["reporting"])
        p["wall"] = wall
        p["examples"] = self.state.global_step * self.args.train_batch_size * self.args.gradient_accumulation_steps
        trial.set_user_attr("profile", {k: round(v, 3) for k, v in p.items() if k != "train_total"})
        trial.set_user_attr("duration_s", round(wall, 2))

    def _keep_if_best(self, trial: "optuna.Trial") -> None:
        """Save this trial's model if it is among the best `keep_checkpoints`; drop the ones pushed out.

        Only models of finished trials are dropped: another worker's trial may have saved its model and not be
        recorded COMPLETE yet. So at most `keep_checkpoints` plus the trials running at once are on disk."""
        if self.checkpoints is None or self.objective is None:
            return
        start = time.perf_counter()
        from optuna.trial import TrialState

        from hpo.study.workers import study_uid

        trials = trial.study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
        # multi-objective studies: the models kept are those best by the metric (their first objective)
        own = self.objective[0] if isinstance(self.objective, (list, tuple)) else self.objective
        values = sorted([t.values[0] for t in done] + [own], reverse=self.direction == "maximize")
        cutoff = values[min(self.keep_checkpoints, len(values)) - 1]
        better = (lambda a, b: a >= b) if self.direction == "maximize" else (lambda a, b: a <= b)
        if better(own, cutoff):
            target = self.checkpoints / f"trial-{trial.number}"
            tmp = target.with_name(target.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            save_model(self, tmp, base_name=getattr(self, "base_name", None))  # a LoRA model: its adapter
            write_json(tmp / KEPT_MARKER, {"study_id": study_uid(trial.study), "trial": trial.number,
                                           "params": trial.params})
            shutil.rmtree(target, ignore_errors=True)
            tmp.replace(target)
            trial.set_user_attr("checkpoint", str(target))
        keep = {t.number for t in done if better(t.values[0], cutoff)} | {trial.number}
        finished = {t.number for t in trials if t.state.is_finished()}
        for old in self.checkpoints.glob("trial-*"):
            num = old.name.removeprefix("trial-")
            if num.isdigit() and int(num) in finished - keep:
                shutil.rmtree(old, ignore_errors=True)
        self.profile["checkpoint"] = time.perf_counter() - start


def kept_model(trial: "optuna.trial.FrozenTrial", study_id: str) -> str | None:
    """The folder of the trial's kept model, if it is still there and still this trial's (a study of the same
    name in another store writes the same folder names)."""
    path = trial.user_attrs.get("checkpoint")
    if not path or not (Path(path) / "config.json").is_file():
        return None
    marker = read_json(Path(path) / KEPT_MARKER) or {}
    return path if marker.get("study_id") == study_id and marker.get("trial") == trial.number else None


def _single_objective(trial: Any) -> bool:
    return hasattr(trial, "study") and len(trial.study.directions) == 1


class SurplusTrial(Exception):
    """This trial started after the study already had enough trials finished or running."""


def _refuse_surplus(trial: "optuna.Trial", n_trials: int) -> None:
    from optuna.trial import TrialState

    ahead = 0
    for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                            TrialState.RUNNING)):
        if t.state != TrialState.RUNNING or t.number < trial.number:
            ahead += 1
    if ahead >= n_trials:
        trial.set_user_attr("surplus", True)
        raise SurplusTrial(f"the study already has {n_trials} trials finished or running")


def _clean(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in metrics.items() if isinstance(v, (int, float))}


class Seq2SeqSearchTrainer(SearchTrainer, Seq2SeqTrainer):
    """SearchTrainer whose evaluations generate text (Seq2SeqTrainer's prediction_step, with the arguments'
    predict_with_generate and generation_* settings), for tasks scored on what the model writes."""


def search_trainer_class(*, generates: bool) -> type[SearchTrainer]:
    return Seq2SeqSearchTrainer if generates else SearchTrainer
