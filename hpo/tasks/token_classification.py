"""token-classification (NER): words and one BIO tag per word; entity-level scores as seqeval computes them.

Rows come from list columns (JSONL/JSON/parquet/Hub) or CoNLL-style files. A word's tag goes on its first
sub-word piece; special tokens and the following pieces get -100, so the loss and the metrics see each word
once. On unseen data the pipeline's entities are mapped back onto the words and scored the same way.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from hpo.errors import DataError, SpecError
from hpo.report.blocks import Block, Para
from hpo.tasks import sections
from hpo.tasks.base import (Columns, Prepared, Task, Where, check_columns, in_length_order, label_maps,
                            make_pipeline)
from hpo.tasks.conll import CONLL_SUFFIXES, read_conll
from hpo.tasks.bootstrap import paired_half_width
from hpo.tasks.ner_metrics import count_score, entities_to_tags, ner_scores, sentence_counts, tags_from_logits
from hpo.tasks.options import TokenClassificationOptions

if TYPE_CHECKING:
    import datasets

IGNORE = -100


class TokenClassification(Task):
    name = "token-classification"
    pipeline_tag = "token-classification"
    description = "a named-entity recognition (token-classification) model"
    Options = TokenClassificationOptions
    metrics = {"f1": "maximize", "precision": "maximize", "recall": "maximize", "accuracy": "maximize"}
    default_metric = "f1"
    peft_task_type = "TOKEN_CLS"
    options: TokenClassificationOptions

    @classmethod
    def for_predict(cls, columns: Columns, *, label_separator: str | None = None) -> "Task":
        """--text-column names the words (a list, or a string split on spaces), --label-column their tags."""
        return cls({"tokens_column": columns.text, "tags_column": columns.label}, columns=columns)

    def check_source(self, source: str, *, file: str | None = None) -> None:
        if self.options.format == "conll" and source != "files":
            raise SpecError(f"format: conll reads local files, but the data source is {source}", file=file,
                            path="dataset.format", hint="use source: files or drop format")

    # -- data --------------------------------------------------------------------------------------
    def read_file(self, path: Path, *, where: Where, split: str) -> "datasets.Dataset | None":
        fmt = self.options.format
        if fmt == "table" or (fmt == "auto" and Path(path).suffix.lower() not in CONLL_SUFFIXES):
            return None
        try:
            return read_conll(path, tokens_column=self.options.tokens_column, tags_column=self.options.tags_column)
        except DataError as e:
            raise where.error(split, str(e), hint=e.hint) from None

    def prepare(self, raw: dict[str, "datasets.Dataset"], *, where: Where) -> Prepared:
        import datasets

        o = self.options
        for split, ds in raw.items():
            check_columns(ds, split, {o.tokens_column: "tokens_column", o.tags_column: "tags_column"}, where)
        rows = {split: self._rows(split, ds, where) for split, ds in raw.items()}
        names = self._names(raw["train"], rows["train"][1])
        known = set(names)
        for split, (_, tags) in rows.items():
            for i, row in enumerate(tags):
                unknown = [t for t in row if t not in known]
                if unknown:
                    raise where.error(split, f"{where.row(split, raw[split], i)} has tag {unknown[0]!r}, which "
                                             f"train never has", hint="add examples of it to train or fix the tag")
        features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                      "tags": datasets.Sequence(datasets.ClassLabel(names=names))})
        index = {n: i for i, n in enumerate(names)}
        splits = {split: datasets.Dataset.from_dict(
            {"tokens": tokens, "tags": [[index[t] for t in row] for row in tags]}, features=features)
            for split, (tokens, tags) in rows.items()}
        if len([n for n in names if n != "O"]) < 1:
            raise where.error("train", "train has no entity tags (every tag is O)", key="tags_column",
                              hint="check the tags column")
        return Prepared(splits, names)

    def _rows(self, split: str, ds: "datasets.Dataset", where: Where) -> tuple[list[list[str]], list[list[str]]]:
        o = self.options
        names = self._given_names(ds)
        tokens, tags = [], []
        for i, (words, labels) in enumerate(zip(ds[o.tokens_column], ds[o.tags_column])):
            row = where.row(split, ds, i)
            if not isinstance(words, list) or not isinstance(labels, list):
                raise where.error(split, f"{row}: tokens and tags must be lists", key="tokens_column",
                                  hint="one list of words and one list of tags per row, or format: conll")
            if len(words) != len(labels):
                raise where.error(split, f"{row} has {len(words)} tokens but {len(labels)} tags",
                                  hint="give exactly one tag per token")
            if not words:
                raise where.error(split, f"{row} has no tokens", hint="drop empty rows")
            if any(w is None or not str(w).strip() for w in words):
                raise where.error(split, f"{row} has an empty token", hint="drop empty tokens and their tags")
            tokens.append([str(w) for w in words])
            tags.append([self._tag(t, names, split, row, where) for t in labels])
        return tokens, tags

    def _tag(self, tag: Any, names: list[str] | None, split: str, row: str, where: Where) -> str:
        if isinstance(tag, int) and not isinstance(tag, bool):
            if names is None:
                raise where.error(split, f"{row} has integer tags and no tag names", key="tag_names",
                                  hint="give tag_names (one name per tag id 0..n-1)")
            if not 0 <= tag < len(names):
                raise where.error(split, f"{row} has tag {tag}, outside tag_names (0..{len(names) - 1})",
                                  key="tag_names", hint="give one name per tag id")
            tag = names[tag]
        tag = str(tag)
        if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
            raise where.error(split, f"{row} has tag {tag!r}; tags must be O, B-TYPE or I-TYPE",
                              key="tags_column", hint="convert the tags to BIO (IOB2)")
        return tag

    def _given_names(self, ds: "datasets.Dataset") -> list[str] | None:
        """Tag names of integer tags: the data set's own (a Hub ClassLabel), else the study's tag_names."""
        inner = getattr(ds.features[self.options.tags_column], "feature", None)
        return [str(n) for n in inner.names] if hasattr(inner, "names") else self.options.tag_names

    def _names(self, train: "datasets.Dataset", tags: list[list[str]]) -> list[str]:
        given = self._given_names(train)
        if given:
            return given
        seen = {t for row in tags for t in row}
        kinds = sorted({t[2:] for t in seen if t != "O"})
        return ["O", *[f"{p}-{k}" for k in kinds for p in ("B", "I")]]

    # -- training ----------------------------------------------------------------------------------
    def describe_labels(self, label_names: list[str]) -> str:
        return f"tags {', '.join(label_names)}"

    def encode_fn(self, tokenizer: Any, *, max_length: int, label_names: list[str]) -> Callable:
        if not getattr(tokenizer, "is_fast", False):
            raise SpecError("token-classification needs a fast tokenizer (it maps sub-word pieces to words)",
                            path="model", hint="use a model that ships tokenizer.json")

        def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
            enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
            enc["labels"] = [align_labels(enc.word_ids(i), tags) for i, tags in enumerate(batch["tags"])]
            enc["length"] = [len(ids) for ids in enc["input_ids"]]
            return enc
        return encode

    @property
    def model_class(self) -> Any:
        from transformers import AutoModelForTokenClassification

        return AutoModelForTokenClassification

    def model_kwargs(self, label_names: list[str]) -> dict[str, Any]:
        return label_maps(label_names)

    def collator(self, tokenizer: Any) -> Any:
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORE)

    def compute_metrics_fn(self, label_names: list[str], *, objective: str | None = None) -> Callable:
        def compute(pred: Any) -> dict[str, float]:
            gold, predicted = tags_from_logits(pred.predictions, pred.label_ids, label_names)
            return ner_scores(gold, predicted)[0]
        return compute

    # -- unseen data -------------------------------------------------------------------------------
    def _tag_words(self, model: str, sentences: list[list[str]], *, max_length: int,
                   batch_size: int) -> tuple[list[list[str]], list[list[dict[str, Any]]], float]:
        pipe = make_pipeline("token-classification", model, max_length=max_length, batch_size=batch_size,
                             aggregation_strategy=self.options.aggregation_strategy)
        outputs, ms = in_length_order(pipe, sentences, [len(s) for s in sentences], is_split_into_words=True)
        tagged = [entities_to_tags(words, out) for words, out in zip(sentences, outputs)]
        return [t for t, _ in tagged], [s for _, s in tagged], ms

    def evaluate(self, model: str, dataset: "datasets.Dataset", label_names: list[str], *, max_length: int,
                 batch_size: int = 64) -> dict[str, Any]:
        sentences = [list(s) for s in dataset["tokens"]]
        gold = [[label_names[i] for i in row] for row in dataset["tags"]]
        predicted, _, ms = self._tag_words(model, sentences, max_length=max_length, batch_size=batch_size)
        metrics, per_type = ner_scores(gold, predicted)
        return {"metrics": metrics, "per_type": per_type, "labels": label_names, "examples": len(sentences),
                "latency_ms_per_example": ms, "sentence_counts": sentence_counts(gold, predicted)}

    def gate_noise(self, metric: str, a: dict[str, Any], b: dict[str, Any]) -> tuple[float, str] | None:
        """A paired bootstrap over the test sentences (entity F1 is no proportion of examples)."""
        if metric not in self.metrics:
            return None
        return paired_half_width(lambda counts: count_score(metric, counts), a.get("sentence_counts") or [],
                                 b.get("sentence_counts") or [])

    def predict(self, model: str, rows: list[dict[str, Any]], *, max_length: int,
                batch_size: int = 64) -> dict[str, Any]:
        o = self.options
        sentences = [self._words(r, i) for i, r in enumerate(rows)]
        tags, spans, ms = self._tag_words(model, sentences, max_length=max_length, batch_size=batch_size)
        out = [{"tokens": s, "predicted": t, "entities": e} for s, t, e in zip(sentences, tags, spans)]
        counts = collections.Counter(e["entity"] for row in spans for e in row)
        result: dict[str, Any] = {"rows": out, "summary": {"rows": len(rows), "entities": dict(counts.most_common()),
                                                          "latency_ms_per_example": ms}}
        if rows and all(o.tags_column in r for r in rows):
            gold = [[str(o.tag_names[t]) if o.tag_names and isinstance(t, int) else str(t)
                     for t in (r[o.tags_column].split() if isinstance(r[o.tags_column], str) else r[o.tags_column])]
                    for r in rows]
            for i, (g, s) in enumerate(zip(gold, sentences)):
                if len(g) != len(s):
                    raise DataError(f"row {i + 1} has {len(s)} tokens but {len(g)} tags",
                                    hint="give exactly one tag per token")
            for row, g in zip(out, gold):
                row["tags"] = g
            result["metrics"], result["per_type"] = ner_scores(gold, tags)
        return result

    def _words(self, row: dict[str, Any], i: int) -> list[str]:
        value = row.get(self.options.tokens_column, row.get(self.columns.text))
        if isinstance(value, str):
            value = value.split()
        if not value:
            raise DataError(f"row {i + 1} has no {self.options.tokens_column!r} (a list of words) and no "
                            f"{self.columns.text!r} text", hint="give each row its words")
        return [str(w) for w in value]

    # -- report and card ---------------------------------------------------------------------------
    def report_sections(self, final: dict[str, Any], data: dict[str, Any], *, model_ref: str,
                        max_length: int) -> dict[str, list[Block]]:
        o = self.options
        kinds = sorted(final.get("per_type", {}))
        evaluation = sections.metrics_table(final, data, ["f1", "precision", "recall", "accuracy", "loss"])
        evaluation.insert(2, Para("Entity-level precision, recall and F1 count an entity right only when its "
                                  "type and all its words are right (micro average, as seqeval computes them); "
                                  "accuracy is per word."))
        if final.get("per_type"):
            evaluation += sections.per_label_table("Per entity type (test)", "entity type", final["per_type"])
        cli = (f"new.jsonl --text-column {o.tokens_column} --label-column {o.tags_column} --out predictions.jsonl")
        return {
            "how_to_use": sections.how_to_use(self.pipeline_tag, model_ref, 'pipe("Ada Lovelace was born in London.")',
                                              cli, kwargs=f', aggregation_strategy="{o.aggregation_strategy}"'),
            "evaluation": evaluation,
            "intended_use": sections.intended_use(
                f"Finding entities of the types {', '.join(kinds) or '(see the labels)'} in text like the "
                "training data.",
                [f"Sentences longer than {max_length} tokens are cut: words after the cut get no entity.",
                 "Text unlike the training data (domain, language, casing) may score much lower.",
                 "It only knows the entity types above."])}

    def card_metadata(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"pipeline_tag": self.pipeline_tag, "tags": ["token-classification", "ner"],
                "widget": [{"text": " ".join(e["tokens"])} for e in list(examples)[:3]],
                "task_type": "token-classification", "task_name": "Token Classification"}


def align_labels(word_ids: Sequence[int | None], tags: Sequence[int]) -> list[int]:
    """A word's tag on its first piece; -100 on special tokens (word id None) and on the following pieces."""
    labels, previous = [], None
    for word in word_ids:
        labels.append(IGNORE if word is None or word == previous else int(tags[word]))
        previous = word
    return labels
