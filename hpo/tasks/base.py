"""The Task seam: everything that differs between NLP tasks, behind one interface.

The flow (search, pruning, selection, workers, hub) calls these methods and knows no task. A task owns how
its rows are read and checked, tokenized, which head and collator train on them, how the Trainer scores
them, how a saved model is scored on unseen data through `transformers.pipeline`, what `hpo predict`
writes, and its report sections and card metadata.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from pydantic import BaseModel, ConfigDict

from hpo.errors import DataError, SpecError

if TYPE_CHECKING:
    import datasets

    from hpo.report.blocks import Block


class TaskOptions(BaseModel):
    """The study-file keys a task adds (all optional, each described); unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


@dataclass(frozen=True)
class Columns:
    """The columns every text task shares (dataset.text_column, text_pair_column, label_column)."""

    text: str = "text"
    text_pair: str | None = None
    label: str = "label"
    joined: tuple[str, ...] = ()  # a text_column list: these columns joined into the text, with `separator`
    separator: str = " "

    @property
    def texts(self) -> list[str]:
        """The columns the (first) text is made of."""
        return list(self.joined) or [self.text]


@dataclass(frozen=True)
class Where:
    """Where rows come from, so an error names the study file, the split and the row a person can find."""

    file: str | None = None  # the study file
    header: dict[str, int] = field(default_factory=dict)  # split -> lines before the first row (1 for csv)

    def row(self, split: str, ds: "datasets.Dataset", i: int) -> str:
        if "_line" in ds.column_names:  # readers that know the line a row starts on (CoNLL) keep it
            return f"{split} row {i + 1} (line {ds[i]['_line']})"
        return f"{split} row {i + 1 + self.header.get(split, 0)}"

    def error(self, split: str, message: str, *, key: str | None = None, hint: str | None = None) -> DataError:
        return DataError(message, file=self.file, path=f"dataset.{key or split}", hint=hint)


@dataclass(frozen=True)
class Prepared:
    """Checked splits in the task's canonical columns, the label names, and the column to stratify by."""

    splits: dict[str, "datasets.Dataset"]
    label_names: list[str]
    stratify: str | None = None  # carving a split from train keeps this column's proportions


class Task(abc.ABC):
    """One NLP task. Construct with the task's options (a dict or its `Options` model) and the columns."""

    name: ClassVar[str]  # the study file's `task:` value
    pipeline_tag: ClassVar[str]  # transformers.pipeline task and the card's pipeline_tag
    description: ClassVar[str]  # "a named-entity recognition (token-classification) model", for reports
    Options: ClassVar[type[TaskOptions]] = TaskOptions
    metrics: ClassVar[dict[str, str]]  # every metric compute_metrics returns -> "maximize" | "minimize"
    default_metric: ClassVar[str]  # also the unseen-data metric the gate compares when the objective is loss
    default_objective: ClassVar[str | None] = None  # objective.metric when the file names none; None: default_metric
    # metrics that are a share of the test examples: the held-out gate's noise for them is binomial
    binomial_metrics: ClassVar[frozenset[str]] = frozenset()
    # peft's task type: it keeps the task head trainable and saves it with a LoRA adapter (modules_to_save)
    peft_task_type: ClassVar[str] = "SEQ_CLS"
    # finalize() scores the validation split (a threshold chosen on it): a time budget costs that in
    settles_on_validation: ClassVar[bool] = False

    def __init__(self, options: TaskOptions | dict[str, Any] | None = None, *,
                 columns: Columns | None = None) -> None:
        self.options = options if isinstance(options, self.Options) else self.Options.model_validate(options or {})
        self.columns = columns or Columns()

    @classmethod
    def for_predict(cls, columns: Columns, *, label_separator: str | None = None) -> "Task":
        """The task as `hpo predict` runs it: the command line's columns (an empty label: no gold labels)."""
        return cls(None, columns=columns)

    # -- the study file ----------------------------------------------------------------------------
    def metric_direction(self, metric: str) -> str:
        """maximize or minimize: each metric's natural direction (loss is minimized)."""
        self.check_objective(metric)
        return "minimize" if metric == "loss" else self.metrics[metric]

    def check_objective(self, metric: str, *, file: str | None = None) -> None:
        """Raise SpecError unless compute_metrics returns `metric` (or it is the Trainer's loss)."""
        if metric != "loss" and metric not in self.metrics:
            raise SpecError(f"{self.name} has no metric {metric!r}", file=file, path="objective.metric",
                            hint=f"use one of {', '.join([*self.metrics, 'loss'])}")

    def check_source(self, source: str, *, file: str | None = None) -> None:
        """Raise SpecError when the task's options do not fit the data source (files, hub, bbc_news)."""

    # -- data --------------------------------------------------------------------------------------
    def read_file(self, path: Path, *, where: Where, split: str) -> "datasets.Dataset | None":
        """Read a data file in a format only this task knows (CoNLL), or None to use the generic readers."""
        return None

    @abc.abstractmethod
    def prepare(self, raw: dict[str, "datasets.Dataset"], *, where: Where) -> Prepared:
        """Check raw splits (train always; validation/test when given) and return them in canonical columns.

        Label names come from train; a label in another split that train never has is an error naming it.
        """

    def describe_labels(self, label_names: list[str]) -> str:
        """What the model learns to output, for the run's `data:` line: "labels a, b, c"."""
        return f"labels {', '.join(label_names)}"

    # -- training ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def encode_fn(self, tokenizer: Any, *, max_length: int,
                  label_names: list[str]) -> Callable[[dict[str, list[Any]]], dict[str, Any]]:
        """A batched `Dataset.map` function: canonical columns -> input_ids, attention_mask, labels, length."""

    @property
    @abc.abstractmethod
    def model_class(self) -> Any:
        """The transformers Auto class of the head (AutoModelForSequenceClassification, ...)."""

    @abc.abstractmethod
    def model_kwargs(self, label_names: list[str]) -> dict[str, Any]:
        """from_pretrained keyword arguments that set the head: num_labels, id2label, label2id, problem_type."""

    def load_model(self, source: str, label_names: list[str]) -> Any:
        """The base model with this task's head (a new head when the saved one has another shape)."""
        return self.model_class.from_pretrained(source, ignore_mismatched_sizes=True,
                                                **self.model_kwargs(label_names))

    def prepare_tokenizer(self, tokenizer: Any) -> Any:
        """The tokenizer as this task trains with it (a causal LM's pad token), saved with every model."""
        return tokenizer

    def preprocess_logits_fn(self) -> Callable[[Any, Any], Any] | None:
        """The Trainer's preprocess_logits_for_metrics: what evaluation keeps of each batch's logits (a language
        model keeps each token's loss, not the vocabulary-wide logits); None keeps the logits."""
        return None

    def generation_arguments(self) -> dict[str, Any] | None:
        """Seq2SeqTrainingArguments fields when the Trainer must generate text to score an evaluation
        (predict_with_generate, generation_max_length, generation_num_beams); None: it scores the model's outputs.
        A task that generates also gets `tokenizer=` in compute_metrics_fn, to decode what was generated."""
        return None

    def collator(self, tokenizer: Any) -> Any:
        """The data collator that pads a batch (and its labels, where they are sequences)."""
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    @abc.abstractmethod
    def compute_metrics_fn(self, label_names: list[str], *,
                           objective: str | None = None) -> Callable[[Any], dict[str, float]] | None:
        """The Trainer's compute_metrics: EvalPrediction -> {metric: float} with every key of `metrics`; None
        when evaluations score the loss only (the Trainer then keeps no predictions)."""

    def finalize(self, model_dir: Path, validation: "datasets.Dataset", label_names: list[str], *,
                 max_length: int, objective: str | None = None) -> dict[str, Any]:
        """After the final model is saved: settle what is chosen on validation (a threshold) into its
        config.json, so a plain `pipeline(model=folder)` and `hpo predict` use it. Returns what was set."""
        return {}

    # -- unseen data -------------------------------------------------------------------------------
    @abc.abstractmethod
    def evaluate(self, model: str, dataset: "datasets.Dataset", label_names: list[str], *, max_length: int,
                 batch_size: int = 64) -> dict[str, Any]:
        """Score a saved model on a canonical split through `transformers.pipeline`: {"metrics": {...},
        "examples": n, "latency_ms_per_example": ms, ...task tables (per class / per entity type)}."""

    @abc.abstractmethod
    def predict(self, model: str, rows: list[dict[str, Any]], *, max_length: int,
                batch_size: int = 64) -> dict[str, Any]:
        """`hpo predict`: {"rows": one output row per input row, "metrics": {...} when the rows carry
        labels, "summary": {...}}. Input rows are raw dicts (csv/jsonl), read with this task's columns."""

    def gate_noise(self, metric: str, a: dict[str, Any], b: dict[str, Any]) -> tuple[float, str] | None:
        """The held-out gate's noise: 95% half-width of the difference in `metric` between two evaluate()
        results on the same rows, and how it was estimated; None when the task cannot tell."""
        return None

    # -- report and card ---------------------------------------------------------------------------
    @abc.abstractmethod
    def report_sections(self, final: dict[str, Any], data: dict[str, Any], *, model_ref: str,
                        max_length: int) -> dict[str, list["Block"]]:
        """The task's report blocks by section: "how_to_use", "evaluation", "intended_use".
        `final` holds validation_metrics, test_metrics and evaluate()'s tables; `data` the split sizes."""

    @abc.abstractmethod
    def card_metadata(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Model card metadata: pipeline_tag, tags, widget (from a few canonical test rows), task_type and
        task_name for the model-index results."""


# -- helpers the tasks share --------------------------------------------------------------------------

def make_pipeline(task: str, model: str, *, max_length: int, batch_size: int = 64, loaded: Any = None,
                  **kwargs: Any) -> Any:
    """A CPU pipeline whose tokenizer truncates at `max_length` (also for pipelines that take no max_length).
    `loaded`: the model of `model` already in memory (its tokenizer still comes from `model`)."""
    from transformers import pipeline

    from hpo.devices import inference_device
    from hpo.search.setup import set_threads

    from hpo.adapters import pipeline_model

    set_threads()
    loaded = pipeline_model(model) if loaded is None else loaded  # an adapter folder: merged onto its base here
    if loaded is not model:
        kwargs.setdefault("tokenizer", model)
    pipe = pipeline(task, model=loaded, device=inference_device(), batch_size=batch_size, **kwargs)
    limit = min(max_length, getattr(pipe.model.config, "max_position_embeddings", max_length) or max_length)
    pipe.tokenizer.model_max_length = limit
    return pipe


def in_length_order(pipe: Any, inputs: Sequence[Any], lengths: Sequence[int], **kwargs: Any) -> tuple[list[Any], float]:
    """Pipeline outputs in input order, computed in batches of about one length (little padding), and the
    milliseconds per input."""
    order = sorted(range(len(inputs)), key=lambda i: lengths[i])
    outputs: list[Any] = [None] * len(inputs)
    start = time.perf_counter()
    for i, out in zip(order, pipe([inputs[i] for i in order], **kwargs)):
        outputs[i] = out
    ms = 1000 * (time.perf_counter() - start) / max(1, len(inputs))
    return outputs, round(ms, 3)


def check_columns(ds: "datasets.Dataset", split: str, needed: dict[str, str], where: Where) -> None:
    """Each needed column (name -> the study-file key that names it) exists in the split."""
    for col, key in needed.items():
        if col not in ds.column_names:
            raise where.error(split, f"the {split} split has no column {col!r} (columns: "
                                     f"{', '.join(c for c in ds.column_names if c != '_line')})",
                              key=key, hint="name one of its columns")


def text_needs(columns: Columns) -> dict[str, str]:
    """The text columns a split needs (name -> the study-file key that names it)."""
    return {c: "text_column" for c in columns.texts} | ({columns.text_pair: "text_pair_column"}
                                                        if columns.text_pair else {})


def joined_texts(ds: "datasets.Dataset", split: str, columns: Columns, where: Where) -> list[str]:
    """The split's texts: the text columns' non-empty values joined with the separator; an empty text is an error."""
    out = []
    for i, parts in enumerate(zip(*[ds[c] for c in columns.texts])):
        kept = [str(v) for v in parts if v is not None and str(v).strip()]
        if not kept:
            raise where.error(split, f"{split} row {i + 1} has an empty text", hint="drop rows without text")
        out.append(columns.separator.join(kept))
    return out


def text_value(value: Any, split: str, ds: "datasets.Dataset", i: int, where: Where) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise where.error(split, f"{where.row(split, ds, i)} has an empty text", hint="drop rows without text")
    return str(value)


def pair_inputs(texts: Sequence[str], pairs: Sequence[str] | None) -> tuple[list[Any], list[int]]:
    """Text-classification pipeline inputs (str, or {"text", "text_pair"}) and their lengths in characters."""
    if pairs is None:
        return list(texts), [len(t) for t in texts]
    return [{"text": t, "text_pair": p} for t, p in zip(texts, pairs)], [len(t) + len(p) for t, p in zip(texts, pairs)]


def text_inputs(dataset: "datasets.Dataset") -> tuple[list[Any], list[int]]:
    """Pipeline inputs of a canonical text split and their lengths."""
    return pair_inputs(dataset["text"], dataset["text_pair"] if "text_pair" in dataset.column_names else None)


def read_texts(rows: list[dict[str, Any]], columns: Columns) -> tuple[list[str], list[str] | None]:
    """The text (and pair) column of `hpo predict`'s input rows; a missing column names the flag to pass."""
    for col, flag in ((columns.text, "--text-column"), (columns.text_pair, "--text-pair-column")):
        if col and rows and col not in rows[0]:
            raise DataError(f"no column {col!r}; columns are {', '.join(map(str, rows[0]))}",
                            hint=f"pass {flag} with one of them")
    texts = ["" if r.get(columns.text) is None else str(r[columns.text]) for r in rows]
    pairs = None if not columns.text_pair else [str(r.get(columns.text_pair) or "") for r in rows]
    return texts, pairs


def text_dataset(texts: list[str], pairs: list[str] | None, label: dict[str, tuple[list[Any], Any]]) -> Any:
    """A canonical text split: text[, text_pair] as strings plus the label column (values, feature)."""
    import datasets

    data: dict[str, list[Any]] = {"text": texts}
    features = {"text": datasets.Value("string")}
    if pairs is not None:
        data["text_pair"], features["text_pair"] = pairs, datasets.Value("string")
    for name, (values, feature) in label.items():
        data[name], features[name] = values, feature
    return datasets.Dataset.from_dict(data, features=datasets.Features(features))


def text_encode_fn(tokenizer: Any, max_length: int, labels: Callable[[list[Any]], list[Any]]) -> Callable:
    """Encode text[, text_pair] with truncation; `labels` turns the batch's label column into model labels."""
    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        enc = tokenizer(batch["text"], batch.get("text_pair"), truncation=True, max_length=max_length)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        enc["labels"] = labels(batch["label"])
        return enc
    return encode


def label_maps(label_names: list[str]) -> dict[str, Any]:
    """num_labels, id2label and label2id for from_pretrained: one output per label name."""
    return {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
            "label2id": {n: i for i, n in enumerate(label_names)}}


def widget_examples(examples: Sequence[dict[str, Any]], n: int = 3) -> list[dict[str, str]]:
    """Hub widget inputs: the first few texts (pairs have no widget input form, so none for them)."""
    if any("text_pair" in e for e in examples):
        return []
    return [{"text": str(e["text"])} for e in list(examples)[:n]]
