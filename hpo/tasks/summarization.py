"""summarization: a sequence-to-sequence model (T5, BART) that writes a summary of each text.

The source is dataset.text_column (a list is joined), the reference summary `target_column`. The search
scores validation loss unless `generate_during_search` asks for ROUGE, which generates every validation
summary at every evaluation. Unseen data is always scored by generating: transformers 5 has no
summarization pipeline, so `model.generate()` runs here in batches of about one length.

What generation needs later (the source prefix, max_new_tokens, beams) is saved with the final model
(config.json and generation_config.json), so `hpo predict` and a plain `model.generate()` use it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from hpo.errors import SpecError
from hpo.report.blocks import Block, Bullets, Code, Heading, Para, Table
from hpo.results import write_json
from hpo.tasks import sections
from hpo.tasks.base import Columns, Prepared, Task, Where, check_columns, joined_texts, read_texts
from hpo.tasks.bootstrap import paired_half_width
from hpo.tasks.options import SummarizationOptions
from hpo.tasks.rouge import ROUGE, mean_scores, one_score, rouge_rows

if TYPE_CHECKING:
    import datasets

METRIC_ORDER = [*ROUGE, "loss"]
PREFIX_KEY = "summarization_prefix"  # config.json attribute the source prefix is saved under
SAMPLES = 5  # test rows shown in the report
SHOWN_CHARS = 200  # a sample's source is cut here


class Summarization(Task):
    name = "summarization"
    pipeline_tag = "summarization"  # the Hub's tag; transformers 5 has no pipeline for it
    description = "a summarization (sequence-to-sequence) model"
    Options = SummarizationOptions
    metrics = {k: "maximize" for k in ROUGE}
    default_metric = "rougeL"
    default_objective = "loss"  # ROUGE during the search costs a generation per validation row and evaluation
    peft_task_type = "SEQ_2_SEQ_LM"

    @classmethod
    def for_predict(cls, columns: Columns, *, label_separator: str | None = None) -> "Task":
        """`hpo predict`: --label-column names the reference summaries (default: a `summary` column, if any)."""
        return cls({"target_column": columns.label} if columns.label else None, columns=columns)

    # -- the study file ----------------------------------------------------------------------------
    def check_objective(self, metric: str, *, file: str | None = None) -> None:
        super().check_objective(metric, file=file)
        if metric in self.metrics and not self.options.generate_during_search:
            raise SpecError(f"objective.metric {metric} scores generated summaries, but "
                            "dataset.generate_during_search is false", file=file, path="objective.metric",
                            hint="set dataset.generate_during_search: true, or use objective.metric: loss")

    def metric_direction(self, metric: str) -> str:
        """Every ROUGE is maximized, generated during the search or not (the test split's always is)."""
        return "maximize" if metric in self.metrics else super().metric_direction(metric)

    # -- data --------------------------------------------------------------------------------------
    def prepare(self, raw: dict[str, "datasets.Dataset"], *, where: Where) -> Prepared:
        import datasets

        c, target = self.columns, self.options.target_column
        if target in c.texts:
            raise where.error("train", f"column {target!r} is both the source text and the summary",
                              key="target_column", hint="name the summary column and the text column apart")
        out = {}
        for split, ds in raw.items():
            check_columns(ds, split, {col: "text_column" for col in c.texts} | {target: "target_column"}, where)
            texts = joined_texts(ds, split, c, where)
            summaries = []
            for i, v in enumerate(ds[target]):
                if v is None or not str(v).strip():
                    raise where.error(split, f"{where.row(split, ds, i)} has an empty {target}",
                                      key="target_column", hint="drop rows without a summary")
                summaries.append(str(v))
            features = datasets.Features({"text": datasets.Value("string"), "summary": datasets.Value("string")})
            out[split] = datasets.Dataset.from_dict({"text": texts, "summary": summaries}, features=features)
        return Prepared(out, [])

    def describe_labels(self, label_names: list[str]) -> str:
        return f"summaries ({self.options.target_column}) of up to {self.options.max_target_length} tokens"

    # -- training ----------------------------------------------------------------------------------
    def encode_fn(self, tokenizer: Any, *, max_length: int, label_names: list[str]) -> Callable:
        prefix, limit = self.options.source_prefix, self.options.max_target_length

        def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
            enc = dict(tokenizer(text=[prefix + t for t in batch["text"]], truncation=True, max_length=max_length))
            enc.pop("token_type_ids", None)  # encoder-decoder models take none
            enc["labels"] = tokenizer(text_target=batch["summary"], truncation=True, max_length=limit)["input_ids"]
            enc["length"] = [len(ids) for ids in enc["input_ids"]]
            return enc
        return encode

    @property
    def model_class(self) -> Any:
        from transformers import AutoModelForSeq2SeqLM

        return AutoModelForSeq2SeqLM

    def model_kwargs(self, label_names: list[str]) -> dict[str, Any]:
        return {}

    def generation_arguments(self) -> dict[str, Any] | None:
        if not self.options.generate_during_search:
            return None
        return {"predict_with_generate": True, "generation_num_beams": self.options.generation_num_beams,
                "generation_max_length": self.options.max_target_length + 1}  # + the decoder's start token

    def collator(self, tokenizer: Any) -> Any:
        from transformers import DataCollatorForSeq2Seq

        # labels padded with -100 (no loss); the model builds decoder_input_ids from them (shifted right)
        return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)

    def compute_metrics_fn(self, label_names: list[str], *, objective: str | None = None,
                           tokenizer: Any = None) -> Callable | None:
        """ROUGE of the generated validation summaries; None (loss only) when the search does not generate."""
        if not self.options.generate_during_search or tokenizer is None:
            return None
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

        def compute(pred: Any) -> dict[str, float]:
            ids = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
            generated = decode(tokenizer, np.where(np.asarray(ids) < 0, pad, ids))  # -100: padding between batches
            references = decode(tokenizer, np.where(np.asarray(pred.label_ids) < 0, pad, pred.label_ids))
            return mean_scores(rouge_rows(generated, references))
        return compute

    def finalize(self, model_dir: Path, validation: "datasets.Dataset", label_names: list[str], *,
                 max_length: int, objective: str | None = None) -> dict[str, Any]:
        """The prefix into config.json, max_new_tokens and beams into generation_config.json."""
        from transformers import AutoConfig, GenerationConfig

        folder = Path(model_dir)
        path = folder / "config.json"
        config = json.loads(path.read_text(encoding="utf-8"))
        config[PREFIX_KEY] = self.options.source_prefix
        write_json(path, config)
        try:
            generation = GenerationConfig.from_pretrained(str(folder))
        except OSError:  # an adapter folder has none: from the model's config (start and end tokens)
            generation = GenerationConfig.from_model_config(AutoConfig.from_pretrained(str(folder)))
        generation.max_new_tokens = self.options.max_target_length
        generation.num_beams = self.options.generation_num_beams
        generation.max_length = None  # max_new_tokens decides
        generation.save_pretrained(str(folder))
        return {"source_prefix": self.options.source_prefix, "max_new_tokens": self.options.max_target_length,
                "num_beams": self.options.generation_num_beams}

    # -- unseen data -------------------------------------------------------------------------------
    def evaluate(self, model: str, dataset: "datasets.Dataset", label_names: list[str], *, max_length: int,
                 batch_size: int = 64) -> dict[str, Any]:
        o = self.options
        generated, ms = generate(model, dataset["text"], max_length=max_length, prefix=o.source_prefix,
                                 max_new_tokens=o.max_target_length, num_beams=o.generation_num_beams,
                                 batch_size=batch_size)
        references = list(dataset["summary"])
        rows = rouge_rows(generated, references)
        return {"metrics": mean_scores(rows), "examples": len(references), "latency_ms_per_example": ms,
                "lengths": lengths(generated, references),
                "samples": samples(dataset["text"], references, generated),
                "rouge_rows": [[round(v, 4) for v in r] for r in rows]}  # the gate's bootstrap

    def gate_noise(self, metric: str, a: dict[str, Any], b: dict[str, Any]) -> tuple[float, str] | None:
        """A paired bootstrap of the per-example ROUGE (a mean of scores, not a share of examples)."""
        if metric not in self.metrics:
            return None
        return paired_half_width(lambda rows: one_score(metric, rows), a.get("rouge_rows") or [],
                                 b.get("rouge_rows") or [])

    def predict(self, model: str, rows: list[dict[str, Any]], *, max_length: int,
                batch_size: int = 64) -> dict[str, Any]:
        texts, _ = read_texts(rows, self.columns)
        prefix, max_new_tokens, num_beams = saved_settings(model)
        generated, ms = generate(model, texts, max_length=max_length, prefix=prefix, max_new_tokens=max_new_tokens,
                                 num_beams=num_beams, batch_size=batch_size)
        out = [{"text": t, "predicted": g} for t, g in zip(texts, generated)]
        result: dict[str, Any] = {"rows": out, "summary": {
            "rows": len(rows), "latency_ms_per_example": ms, "source_prefix": prefix,
            "max_new_tokens": max_new_tokens, "num_beams": num_beams,
            "mean_generated_words": mean_words(generated)}}
        target = self.options.target_column
        if rows and all(target in r for r in rows):
            references = ["" if r[target] is None else str(r[target]) for r in rows]
            for row, ref in zip(out, references):
                row["reference"] = ref
            result["metrics"] = mean_scores(rouge_rows(generated, references))
        return result

    # -- report and card ---------------------------------------------------------------------------
    def report_sections(self, final: dict[str, Any], data: dict[str, Any], *, model_ref: str,
                        max_length: int) -> dict[str, list[Block]]:
        o, c = self.options, self.columns
        evaluation = sections.metrics_table(final, data, METRIC_ORDER)
        evaluation.insert(2, Para(
            "ROUGE counts the words (rouge1), word pairs (rouge2) and longest common word sequence (rougeL; "
            "rougeLsum per sentence) a generated summary shares with the reference: mean F-measures over the "
            "examples, 0 to 1, higher is better. Loss is the validation cross-entropy of the reference summaries."))
        size = final.get("lengths")
        if size:
            evaluation.append(Bullets([f"generated summaries: {size['generated_words']:.1f} words on average "
                                       f"(references: {size['reference_words']:.1f})"]))
        if final.get("samples"):
            evaluation += [Heading(3, "Sample outputs (test)"), Table(
                ["source", "reference", "generated"],
                [[s["source"], s["reference"], s["generated"]] for s in final["samples"]])]
        text = f'"{o.source_prefix}A long text to summarize ..."'
        code = (f'from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{model_ref}")\n'
                f'model = AutoModelForSeq2SeqLM.from_pretrained("{model_ref}")\n'
                f"inputs = tokenizer([{text}], truncation=True, max_length={max_length}, return_tensors=\"pt\")\n"
                f"ids = model.generate(input_ids=inputs[\"input_ids\"], attention_mask=inputs[\"attention_mask\"], "
                f"max_new_tokens={o.max_target_length}, num_beams={o.generation_num_beams})\n"
                "print(tokenizer.batch_decode(ids, skip_special_tokens=True))")
        how = [Heading(2, "How to use"),
               Para("transformers 5 has no summarization pipeline: generate with the model"
                    + (f" (each text starts with the prefix `{o.source_prefix}`, as in training)" if o.source_prefix
                       else "") + "."),
               Code(code, "python"),
               Para("Or summarize a file from the command line (with the reference column, it scores ROUGE too):"),
               Code(f"hpo predict {model_ref} new.jsonl --text-column {c.text} --label-column {o.target_column} "
                    "--out predictions.jsonl", "bash")]
        return {"how_to_use": how, "evaluation": evaluation, "intended_use": sections.intended_use(
            "Summarizing texts like those of the training data, in the style of its reference summaries.",
            [f"Inputs longer than {max_length} tokens are truncated: the model never sees the end of long texts; "
             f"summaries stop at {o.max_target_length} tokens.",
             "A summary can state what the text does not say; ROUGE measures word overlap, not faithfulness."])}

    def card_metadata(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        widget = [{"text": self.options.source_prefix + str(e["text"])} for e in list(examples)[:3] if "text" in e]
        return {"pipeline_tag": self.pipeline_tag, "tags": ["summarization", "text2text-generation"],
                "widget": widget, "task_type": "summarization", "task_name": "Summarization"}


# -- generation -----------------------------------------------------------------------------------

def decode(tokenizer: Any, ids: Any) -> list[str]:
    return [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]


def generate(model: str, texts: Sequence[str], *, max_length: int, prefix: str, max_new_tokens: int,
             num_beams: int, batch_size: int = 64) -> tuple[list[str], float]:
    """Summaries of `texts` (in their order) by a saved model (an adapter folder is merged onto its base), in
    batches shortest first; and the milliseconds per text."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from hpo.adapters import pipeline_model
    from hpo.devices import inference_torch_device
    from hpo.search.setup import set_threads

    set_threads()
    loaded = pipeline_model(model)
    if isinstance(loaded, str):
        loaded = AutoModelForSeq2SeqLM.from_pretrained(loaded)
    loaded = loaded.to(inference_torch_device()).eval()
    tokenizer = AutoTokenizer.from_pretrained(model)
    sources = [prefix + t for t in texts]
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    out: list[str] = [""] * len(sources)
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(order), batch_size):
            rows = order[first:first + batch_size]
            enc = tokenizer([sources[i] for i in rows], truncation=True, max_length=max_length, padding=True,
                            return_tensors="pt")
            ids = loaded.generate(input_ids=enc["input_ids"].to(loaded.device),
                                  attention_mask=enc["attention_mask"].to(loaded.device),
                                  max_new_tokens=max_new_tokens, num_beams=num_beams)
            for i, text in zip(rows, decode(tokenizer, ids.cpu())):
                out[i] = text
    ms = 1000 * (time.perf_counter() - start) / max(1, len(sources))
    return out, round(ms, 3)


def saved_settings(model: str) -> tuple[str, int, int]:
    """The source prefix, max_new_tokens and beams saved with a model by `finalize` (else none, 64 and 1)."""
    from transformers import AutoConfig, GenerationConfig

    defaults = SummarizationOptions()
    prefix = getattr(AutoConfig.from_pretrained(model), PREFIX_KEY, None) or ""
    try:
        generation = GenerationConfig.from_pretrained(model)
    except OSError:
        return prefix, defaults.max_target_length, defaults.generation_num_beams
    return (prefix, int(generation.max_new_tokens or defaults.max_target_length),
            int(generation.num_beams or defaults.generation_num_beams))


def mean_words(texts: Sequence[str]) -> float:
    return round(float(np.mean([len(t.split()) for t in texts])), 2) if texts else 0.0


def lengths(generated: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean words of the generated and the reference summaries."""
    return {"generated_words": mean_words(generated), "reference_words": mean_words(references)}


def samples(texts: Sequence[str], references: Sequence[str], generated: Sequence[str]) -> list[dict[str, str]]:
    """The first test rows as the report shows them: source (cut), reference, generated."""
    def cut(t: str) -> str:
        return t if len(t) <= SHOWN_CHARS else t[:SHOWN_CHARS].rsplit(" ", 1)[0] + " …"
    return [{"source": cut(t), "reference": r, "generated": g}
            for t, r, g in list(zip(texts, references, generated))[:SAMPLES]]

