"""causal-lm: fine-tune a generative (decoder-only) language model on plain text or on prompt/completion pairs.

Plain text trains on every token; prompt/completion trains on the completion's tokens only (the prompt's labels
are -100). Packing joins plain texts into blocks of max_length tokens (no padding). The search scores the
Trainer's loss (or perplexity); unseen data gets its held-out loss and perplexity, and a table of generations
through `pipeline("text-generation")`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from hpo.errors import DataError
from hpo.report.blocks import Block, Heading, Para, Table
from hpo.tasks import sections
from hpo.tasks.base import Columns, Prepared, Task, Where, check_columns, make_pipeline, text_value
from hpo.tasks.bootstrap import paired_half_width
from hpo.tasks.language_modeling import (IGNORE, held_out_losses, perplexity_metrics, pooled, safe_exp,
                                         token_losses)
from hpo.tasks.options import CausalLMOptions

if TYPE_CHECKING:
    import datasets

METRIC_ORDER = ["loss", "perplexity"]


class CausalLM(Task):
    name = "causal-lm"
    pipeline_tag = "text-generation"
    description = "a causal language model"
    Options = CausalLMOptions
    metrics = {"perplexity": "minimize"}
    default_metric = "loss"
    peft_task_type = "CAUSAL_LM"

    @classmethod
    def for_predict(cls, columns: Columns, *, label_separator: str | None = None) -> "Task":
        """--text-column is the prompt; --label-column, when given, the completion to score."""
        options = {"prompt_column": columns.text, "completion_column": columns.label} if columns.label else {}
        return cls(options, columns=columns)

    @property
    def paired(self) -> bool:
        return self.options.prompt_column is not None

    # -- data --------------------------------------------------------------------------------------
    def _needed(self) -> dict[str, str]:
        o = self.options
        if self.paired:
            return {o.prompt_column: "prompt_column", o.completion_column: "completion_column"}
        return {c: "text_column" for c in self.columns.texts}

    def prepare(self, raw: dict[str, "datasets.Dataset"], *, where: Where) -> Prepared:
        import datasets

        o, c = self.options, self.columns
        out = {}
        for split, ds in raw.items():
            check_columns(ds, split, self._needed(), where)
            if self.paired:
                prompts = [text_value(v, split, ds, i, where) for i, v in enumerate(ds[o.prompt_column])]
                completions = [text_value(v, split, ds, i, where) for i, v in enumerate(ds[o.completion_column])]
            else:
                prompts = [""] * len(ds)
                completions = [c.separator.join(str(v) for v in parts if v is not None and str(v).strip())
                               for parts in zip(*[ds[col] for col in c.texts])]
                for i, text in enumerate(completions):
                    text_value(text, split, ds, i, where)
            out[split] = datasets.Dataset.from_dict({"prompt": prompts, "completion": completions},
                                                     features=datasets.Features({"prompt": datasets.Value("string"),
                                                                                 "completion": datasets.Value("string")}))
        return Prepared(out, [])

    def describe_labels(self, label_names: list[str]) -> str:
        o = self.options
        if self.paired:
            return f"the model learns to write {o.completion_column} after {o.prompt_column} (loss on the completion)"
        return "the model learns the texts" + (f", packed into blocks" if o.packing else "")

    # -- training ----------------------------------------------------------------------------------
    def prepare_tokenizer(self, tokenizer: Any) -> Any:
        """A pad token (many causal LMs have none: the end-of-text token pads, the labels ignore it)."""
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise DataError("the tokenizer has neither a pad nor an end-of-text token",
                                hint="use a model whose tokenizer defines eos_token")
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def encode_fn(self, tokenizer: Any, *, max_length: int, label_names: list[str]) -> Callable:
        o = self.options
        eos = tokenizer.eos_token_id

        def closed(ids: list[int]) -> list[int]:
            return ids + [eos] if eos is not None and (not ids or ids[-1] != eos) else ids

        def one(head: list[int] | None, body: list[int]) -> tuple[list[int], list[int]]:
            body = closed(body)
            if head is None:
                body = body if o.packing else body[:max_length]  # packed texts are cut into blocks instead
                return body, list(body)
            if head and head[-1] == eos:  # a tokenizer that closes every text ([SEP]): the completion follows
                head = head[:-1]
            body = body[:max_length]
            head = head[max(0, len(head) - (max_length - len(body))):] if max_length > len(body) else []
            return head + body, [IGNORE] * len(head) + body

        def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
            if any(batch["prompt"]):  # prompt/completion rows: the prompt opens with the tokenizer's begin token
                heads = tokenizer(batch["prompt"], truncation=False)["input_ids"]
                bodies = tokenizer([o.completion_prefix + c for c in batch["completion"]], add_special_tokens=False,
                                   truncation=False)["input_ids"]
            else:
                heads = [None] * len(batch["completion"])
                bodies = tokenizer(batch["completion"], truncation=False)["input_ids"]
            pairs = [one(h, b) for h, b in zip(heads, bodies)]
            if o.packing:
                return pack([ids for ids, _ in pairs], max_length)
            ids = [p[0] for p in pairs]
            return {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids],
                    "labels": [p[1] for p in pairs], "length": [len(x) for x in ids]}
        return encode

    @property
    def model_class(self) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def model_kwargs(self, label_names: list[str]) -> dict[str, Any]:
        return {}

    def load_model(self, source: str, label_names: list[str]) -> Any:
        return self.model_class.from_pretrained(source)

    def collator(self, tokenizer: Any) -> Any:
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE)  # pads labels with -100, as input

    def preprocess_logits_fn(self) -> Callable | None:
        return token_losses

    def compute_metrics_fn(self, label_names: list[str], *, objective: str | None = None) -> Callable:
        def compute(pred: Any) -> dict[str, float]:
            return perplexity_metrics(pred.predictions, pred.label_ids)
        return compute

    # -- unseen data -------------------------------------------------------------------------------
    def _scored(self, model: str, prompts: Sequence[str], completions: Sequence[str], *,
                max_length: int) -> tuple[list[list[float]], float, Any]:
        """Per row (loss sum, tokens) of the completions, ms per row, and the loaded model."""
        from transformers import AutoTokenizer

        from hpo.adapters import pipeline_model
        from hpo.search.setup import set_threads

        set_threads()
        tokenizer = self.prepare_tokenizer(AutoTokenizer.from_pretrained(model))
        loaded = pipeline_model(model)
        if isinstance(loaded, str):
            loaded = self.model_class.from_pretrained(loaded)
        encode = self.encode_fn(tokenizer, max_length=max_length, label_names=[])
        enc = encode({"prompt": list(prompts), "completion": list(completions)})
        rows = [{"input_ids": i, "labels": lab} for i, lab in zip(enc["input_ids"], enc["labels"])]
        points, ms = held_out_losses(loaded, rows, pad_id=tokenizer.pad_token_id)
        return points, ms, loaded

    def _generate(self, model: str, prompts: Sequence[str], *, max_length: int, loaded: Any = None) -> list[str]:
        pipe = make_pipeline("text-generation", model, max_length=max_length, batch_size=8, loaded=loaded)
        if pipe.tokenizer.pad_token is None:
            pipe.tokenizer.pad_token = pipe.tokenizer.eos_token
        pipe.tokenizer.padding_side = "left"  # a decoder continues the prompt's last token
        outputs = pipe(list(prompts), max_new_tokens=self.options.max_new_tokens, do_sample=False,
                       return_full_text=False, pad_token_id=pipe.tokenizer.pad_token_id)
        return [(o[0] if isinstance(o, list) else o)["generated_text"] for o in outputs]

    def sample_prompts(self, prompts: Sequence[str], completions: Sequence[str]) -> list[tuple[str, str]]:
        """(prompt, reference) of the first rows: the prompt, or a plain text's first half of its words."""
        out = []
        for p, c in list(zip(prompts, completions))[:self.options.sample_prompts]:
            if p:  # a prefix's trailing spaces would be a token of their own before the completion's first word
                out.append((p + self.options.completion_prefix.rstrip(" "), c))
            else:
                words = c.split()
                cut = max(1, len(words) // 2)
                out.append((" ".join(words[:cut]), " ".join(words[cut:])))
        return out

    def evaluate(self, model: str, dataset: "datasets.Dataset", label_names: list[str], *, max_length: int,
                 batch_size: int = 64) -> dict[str, Any]:
        prompts, completions = dataset["prompt"], dataset["completion"]
        points, ms, loaded = self._scored(model, prompts, completions, max_length=max_length)
        loss = pooled(np.asarray(points))
        samples = self.sample_prompts(prompts, completions)
        generated = self._generate(model, [p for p, _ in samples], max_length=max_length, loaded=loaded)
        return {"metrics": {"loss": loss, "perplexity": safe_exp(loss)}, "examples": len(points),
                "latency_ms_per_example": ms, "tokens": int(sum(p[1] for p in points)),
                "samples": [{"prompt": p, "reference": r, "generated": g} for (p, r), g in zip(samples, generated)],
                "token_losses": [[round(a, 5), b] for a, b in points]}  # (sum, tokens) per row

    def gate_noise(self, metric: str, a: dict[str, Any], b: dict[str, Any]) -> tuple[float, str] | None:
        if metric not in ("loss", "perplexity"):
            return None
        score = pooled if metric == "loss" else (lambda p: safe_exp(pooled(p)))
        return paired_half_width(score, a.get("token_losses") or [], b.get("token_losses") or [])

    def predict(self, model: str, rows: list[dict[str, Any]], *, max_length: int,
                batch_size: int = 64) -> dict[str, Any]:
        import time

        prompt_col, completion_col = self.columns.text, self.options.completion_column
        if rows and prompt_col not in rows[0]:
            raise DataError(f"no column {prompt_col!r}; columns are {', '.join(map(str, rows[0]))}",
                            hint="pass --text-column with the prompts' column")
        prompts = ["" if r.get(prompt_col) is None else str(r[prompt_col]) for r in rows]
        scored = completion_col and rows and all(completion_col in r for r in rows)
        completions = [str(r[completion_col] or "") for r in rows] if scored else []
        points, loaded = None, None
        if scored:  # score first, then generate with the model it loaded
            points, _, loaded = self._scored(model, prompts, completions, max_length=max_length)
        start = time.perf_counter()
        generated = self._generate(model, prompts, max_length=max_length, loaded=loaded)
        ms = round(1000 * (time.perf_counter() - start) / max(1, len(rows)), 3)
        out = [{"text": p, "generated": g} for p, g in zip(prompts, generated)]
        result: dict[str, Any] = {"rows": out, "summary": {"rows": len(rows), "latency_ms_per_example": ms}}
        if points is not None:
            for row, completion in zip(out, completions):
                row["label"] = completion
            loss = pooled(np.asarray(points))
            result["metrics"] = {"loss": loss, "perplexity": safe_exp(loss)}
        return result

    # -- report and card ---------------------------------------------------------------------------
    def report_sections(self, final: dict[str, Any], data: dict[str, Any], *, model_ref: str,
                        max_length: int) -> dict[str, list[Block]]:
        evaluation = sections.metrics_table(final, data, METRIC_ORDER)
        evaluation.insert(2, Para("Loss is the mean cross-entropy per predicted token"
                                  + (" of the completions" if self.paired else "")
                                  + "; perplexity is its exponential (lower is better for both)."))
        samples = final.get("samples") or []
        if samples:
            evaluation += [Heading(3, "Sample generations (test, greedy)"),
                           Table(["prompt", "reference", "generated"],
                                 [[short(s["prompt"]), short(s["reference"]), short(s["generated"])] for s in samples])]
        call = 'pipe("Once upon a time", max_new_tokens=40)'
        cli = f"new.jsonl --text-column {self.options.prompt_column or 'prompt'} --out generations.jsonl"
        return {"how_to_use": sections.how_to_use("text-generation", model_ref, call, cli),
                "evaluation": evaluation,
                "intended_use": sections.intended_use(
                    "Generating text like the training data" + (" from prompts like its prompts." if self.paired
                                                                else "."),
                    ["It can state false things fluently: check what it writes before using it.",
                     f"It was trained on sequences of at most {max_length} tokens."])}

    def card_metadata(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        widget = [{"text": p} for p, _ in self.sample_prompts([e["prompt"] for e in examples],
                                                               [e["completion"] for e in examples])[:3]]
        return {"pipeline_tag": self.pipeline_tag, "tags": ["text-generation", "causal-lm"], "widget": widget,
                "task_type": "text-generation", "task_name": "Causal Language Modeling"}


def pack(sequences: list[list[int]], block: int) -> dict[str, list[Any]]:
    """Texts (each ending with end-of-text) joined and cut into blocks of `block` tokens; the tail is dropped
    unless it is all there is."""
    flat = [t for s in sequences for t in s]
    n = max(1, len(flat) // block) if flat else 0
    blocks = [flat[i * block:(i + 1) * block] for i in range(n)]
    return {"input_ids": blocks, "attention_mask": [[1] * len(b) for b in blocks], "labels": [list(b) for b in blocks],
            "length": [len(b) for b in blocks]}


def short(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 1] + "…"
