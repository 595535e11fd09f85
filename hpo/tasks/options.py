"""The study-file keys of the tasks that have their own (under `dataset:`), kept light: the schema imports them."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field, model_validator

from hpo.tasks.base import TaskOptions


class TokenClassificationOptions(TaskOptions):
    tokens_column: str = Field("tokens", description="token-classification: column with each row's words (a list).")
    tags_column: str = Field("ner_tags", description="token-classification: column with one tag per word (a list "
                                                     "of BIO tags such as B-PER, I-PER, O; or integers with "
                                                     "tag_names).")
    tag_names: list[str] | None = Field(None, description="token-classification: names of integer tags 0..n-1.")
    format: Literal["auto", "conll", "table"] = Field(
        "auto", description="token-classification files: conll (one token per line, tag in the last column, "
                            "blank line between sentences), table (csv/json/jsonl/parquet with list columns); "
                            "auto: conll for .conll/.iob/.bio/.txt/.tsv files, table otherwise.")
    aggregation_strategy: Literal["first", "average", "max", "simple", "none"] = Field(
        "first", description="token-classification: how the pipeline joins sub-word predictions into "
                             "entities on unseen data (first: a word takes its first piece's tag; none: "
                             "no grouping, scored exactly as during the search).")


class MultiLabelOptions(TaskOptions):
    label_separator: str | None = Field(
        None, min_length=1, description="multi-label-classification: label_column holds a string of labels "
                                        "joined by this separator (e.g. ','); absent: a list column.")
    label_columns: list[str] | None = Field(
        None, min_length=2, description="multi-label-classification: one 0/1 column per label (their names "
                                        "are the labels), instead of label_column.")
    threshold: Union[Literal["auto"], float] = Field(
        "auto", description="multi-label-classification: a label is predicted when its score reaches this; "
                            "auto: chosen on validation (best objective metric; f1_micro for loss).")

    @model_validator(mode="after")
    def _one_source(self) -> "MultiLabelOptions":
        if self.label_separator is not None and self.label_columns is not None:
            raise ValueError("label_separator is for one delimited label column, label_columns for 0/1 "
                             "columns; give one of them")
        if isinstance(self.threshold, float) and not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be between 0 and 1 (exclusive), got {self.threshold}")
        if self.label_columns is not None and len(set(self.label_columns)) != len(self.label_columns):
            raise ValueError("label_columns names a column twice; list each once")
        return self


class CausalLMOptions(TaskOptions):
    prompt_column: str | None = Field(
        None, description="causal-lm: column with the prompts; with completion_column the model learns to write "
                          "the completion after the prompt (the loss counts the completion's tokens only). "
                          "Absent: plain text from text_column, every token counted.")
    completion_column: str | None = Field(None, description="causal-lm: column with the completions (with "
                                                            "prompt_column).")
    completion_prefix: str = Field("", description="causal-lm: text put between a prompt and its completion, "
                                                   "e.g. ' ' or '\\n### Answer:\\n' (part of the completion's tokens).")
    packing: bool = Field(False, description="causal-lm, plain text: join the texts (each ending with the "
                                             "end-of-text token) into blocks of max_length tokens: no padding, "
                                             "so faster on short texts; false: one padded row per text.")
    max_new_tokens: int = Field(48, ge=1, le=2048, description="causal-lm: tokens generated per prompt for the "
                                                                "report's sample generations and `hpo predict`.")
    sample_prompts: int = Field(5, ge=0, le=100, description="causal-lm: test rows whose generations the report "
                                                             "shows (plain text: the first half of its words is "
                                                             "the prompt).")

    @model_validator(mode="after")
    def _columns(self) -> "CausalLMOptions":
        if (self.prompt_column is None) != (self.completion_column is None):
            raise ValueError("prompt_column and completion_column go together: give both for prompt/completion "
                             "rows, or neither for plain text in text_column")
        if self.packing and self.prompt_column is not None:
            raise ValueError("packing joins plain texts; prompt/completion rows are padded, so drop packing")
        return self


class SummarizationOptions(TaskOptions):
    target_column: str = Field("summary", min_length=1, description="summarization: column with each row's "
                                                                     "reference summary (the source text is "
                                                                     "text_column).")
    source_prefix: str = Field("", description="summarization: put before every source text, e.g. 'summarize: ' "
                                               "for T5 models; saved with the model, so `hpo predict` adds it too.")
    max_target_length: int = Field(64, ge=1, le=4096, description="summarization: summary tokens: targets are "
                                                                 "truncated to it and generation stops there.")
    generation_num_beams: int = Field(1, ge=1, le=32, description="summarization: beams when generating "
                                                                  "summaries (1: greedy).")
    generate_during_search: bool = Field(
        False, description="summarization: false: trials are scored by validation loss; true: each evaluation "
                           "generates summaries of the validation rows and scores ROUGE (slower), so "
                           "objective.metric can be rouge1, rouge2, rougeL or rougeLsum.")


# task -> the class of its own dataset keys (text-classification's are dataset.label_names, objective.average)
DATASET_OPTIONS: dict[str, type[TaskOptions]] = {
    "token-classification": TokenClassificationOptions,
    "multi-label-classification": MultiLabelOptions,
    "causal-lm": CausalLMOptions,
    "summarization": SummarizationOptions,
}
