"""summarization: options and the ROUGE objective that needs generation, data checks, encoding, ROUGE against
hand-computed values, and `hpo run` / `hpo predict` end to end with a tiny T5 (plain, ROUGE-scored trials,
LoRA).

The data: SST-2 sentences whose "summary" is "a positive review" or "a negative review", which a tiny model
learns in a few dozen steps (so ROUGE is not zero), while the sentiment word keeps it from being constant."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from task_helpers import SHARED, to_dataset, write_jsonl

from hpo.cli import main
from hpo.errors import DataError, SpecError
from hpo.report import markdown
from hpo.spec import load_study
from hpo.tasks import Where, get_task, study_task, task_of_model
from hpo.tasks.rouge import rouge_scores, sentences

SIZES = {"train": 96, "validation": 24, "test": 24}


def reviews(n: int, skip: int = 0) -> list[dict[str, str]]:
    with open(SHARED / "sst2" / "train.csv", newline="", encoding="utf-8") as fh:
        rows = [r for _, r in zip(range(skip + n), csv.DictReader(fh))][skip:]
    return [{"review": r["sentence"], "gist": f"a {'positive' if r['label'] == '1' else 'negative'} review"}
            for r in rows]


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hpo.testing.tiny import build_tiny_seq2seq

    rows = reviews(sum(SIZES.values()))
    return build_tiny_seq2seq(tmp_path_factory.mktemp("t5"), [r["review"] + " " + r["gist"] for r in rows])


def _study(tmp_path: Path, base: Path | str, *, dataset: dict[str, Any] | None = None,
           objective: dict[str, Any] | None = None, peft: dict[str, Any] | None = None, top_k: int = 1) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    skip = 0
    for split, n in SIZES.items():
        write_jsonl(data / f"{split}.jsonl", reviews(n, skip))
        skip += n
    doc: dict[str, Any] = {
        "name": "tiny-summaries", "task": "summarization", "model": str(base),
        "dataset": {"train": "data/train.jsonl", "validation": "data/validation.jsonl", "test": "data/test.jsonl",
                    "text_column": "review", "target_column": "gist", "max_length": 32, "max_target_length": 8,
                    **(dataset or {})},
        "search": {"n_trials": 2, "evals_per_epoch": 1, "baseline": False,
                   "space": {"learning_rate": {"type": "float", "low": 2e-2, "high": 4e-2, "log": True}},
                   "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "none"}},
        "selection": {"top_k": top_k},
        "training": {"num_train_epochs": 2, "per_device_train_batch_size": 8, "seed": 0},
        **({"objective": objective} if objective else {}), **({"peft": peft} if peft else {}),
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _run(study: Path) -> dict[str, Any]:
    assert main(["run", str(study)]) == 0
    return json.loads((study.parent / "runs" / "tiny-summaries" / "results.json").read_text())


# -- the study file ---------------------------------------------------------------------------------

def test_options_defaults_and_the_rouge_objective_needs_generation(tmp_path: Path) -> None:
    task = get_task("summarization")
    o = task.options
    assert (o.target_column, o.source_prefix, o.max_target_length, o.generation_num_beams,
            o.generate_during_search) == ("summary", "", 64, 1, False)
    assert task.metric_direction("rougeL") == "maximize" and task.metric_direction("loss") == "minimize"
    assert task.generation_arguments() is None and task.compute_metrics_fn([]) is None
    with pytest.raises(SpecError, match="has no metric 'bleu'"):
        task.check_objective("bleu")

    base = "some/model"  # a Hub id: validation reads no weights
    loaded = load_study(_study(tmp_path, base), read_only=True)
    assert loaded.spec.objective.metric == "loss" and loaded.spec.objective.resolved_direction == "minimize"
    with pytest.raises(SpecError) as err:
        load_study(_study(tmp_path, base, objective={"metric": "rouge1"}), read_only=True)
    message = err.value.one_line()
    assert "objective.metric rouge1" in message and "dataset.generate_during_search is false" in message
    assert "\n" not in message and "generate_during_search: true" in message
    generating = study_task(load_study(_study(tmp_path, base, objective={"metric": "rouge1"},
                                              dataset={"generate_during_search": True, "generation_num_beams": 2}),
                                       read_only=True).spec)
    generating.check_objective("rouge1")
    assert generating.generation_arguments() == {"predict_with_generate": True, "generation_num_beams": 2,
                                                 "generation_max_length": 9}
    with pytest.raises(SpecError, match="tags_column is a key of token-classification"):
        load_study(_study(tmp_path, base, dataset={"tags_column": "x"}), read_only=True)


# -- data and encoding ------------------------------------------------------------------------------

def test_prepare_keeps_source_and_summary_and_names_bad_rows() -> None:
    from hpo.tasks import Columns

    task = get_task("summarization", {"target_column": "gist"}, columns=Columns(text="review"))
    train = to_dataset(reviews(4))
    prepared = task.prepare({"train": train}, where=Where(file="s.yaml"))
    assert prepared.label_names == [] and prepared.stratify is None
    assert prepared.splits["train"].column_names == ["text", "summary"]
    assert prepared.splits["train"]["summary"][0] in ("a positive review", "a negative review")
    with pytest.raises(DataError, match="the train split has no column 'text' \\(columns: review, gist\\)") as err:
        get_task("summarization", {"target_column": "gist"}).prepare({"train": train}, where=Where(file="s.yaml"))
    assert err.value.path == "dataset.text_column"
    with pytest.raises(DataError, match="the train split has no column 'summary'") as err:
        get_task("summarization", columns=Columns(text="review")).prepare({"train": train}, where=Where())
    assert err.value.path == "dataset.target_column"
    empty = to_dataset([{"review": "fine", "gist": "ok"}, {"review": "dull", "gist": " "}])
    with pytest.raises(DataError, match="validation row 2 has an empty gist") as err:
        task.prepare({"train": train, "validation": empty}, where=Where(file="s.yaml"))
    assert err.value.path == "dataset.target_column" and "\n" not in str(err.value)


def test_encode_gives_target_ids_as_labels_and_the_source_length(tiny_t5: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_t5)
    task = get_task("summarization", {"source_prefix": "summarize: ", "max_target_length": 4})
    encode = task.encode_fn(tokenizer, max_length=6, label_names=[])
    out = encode({"text": ["the film is a fine film indeed", "dull"], "summary": ["a positive review", "bad"]})
    assert "token_type_ids" not in out
    assert out["input_ids"][0] == tokenizer("summarize: the film is a fine film indeed", truncation=True,
                                            max_length=6)["input_ids"]
    assert out["length"] == [6, len(tokenizer("summarize: dull")["input_ids"])]
    assert out["labels"][0] == tokenizer(text_target="a positive review", truncation=True, max_length=4)["input_ids"]
    assert len(out["labels"][0]) == 4 and len(out["labels"][1]) == 3
    batch = task.collator(tokenizer)([{k: out[k][i] for k in ("input_ids", "attention_mask", "labels")}
                                      for i in range(2)])
    assert batch["labels"].tolist()[1][-1] == -100  # padded labels carry no loss


def test_rouge_against_hand_computed_values() -> None:
    # rouge1: 5 shared words of 6 (prediction) and 5 (reference): P 5/5, R 5/6 -> F 10/11
    s = rouge_scores(["the cat sat on the mat"], ["the cat on the mat"])
    assert s["rouge1"] == pytest.approx(10 / 11) and s["rougeL"] == pytest.approx(10 / 11)
    # bigrams: prediction the-cat cat-sat sat-on on-the the-mat; reference the-cat cat-on on-the the-mat: 3 shared
    assert s["rouge2"] == pytest.approx(2 * (3 / 4) * (3 / 5) / (3 / 4 + 3 / 5))
    both = rouge_scores(["a b", "x"], ["a b", "y"])  # the mean over examples: (1 + 0) / 2
    assert both == {"rouge1": 0.5, "rouge2": 0.5, "rougeL": 0.5, "rougeLsum": 0.5}
    assert rouge_scores(["Cats run."], ["cat running"])["rouge1"] == 1.0  # lower-cased and stemmed
    assert sentences("One. Two! Three") == "One.\nTwo!\nThree"
    # rougeLsum per sentence: the union LCS of each reference sentence with the prediction's sentences
    assert rouge_scores(["b a. c d."], ["a b. c d."])["rougeLsum"] == pytest.approx(0.75)


# -- end to end -------------------------------------------------------------------------------------

def test_run_scores_loss_then_rouge_on_test_and_predict_summarizes(tmp_path: Path, tiny_t5: Path) -> None:
    study = _study(tmp_path, tiny_t5, dataset={"source_prefix": "summarize: "})
    assert main(["validate", str(study), "--data"]) == 0
    results = _run(study)
    final = results["final"]
    assert results["task"] == "summarization" and results["objective"] == {"metric": "loss",
                                                                          "direction": "minimize"}
    assert set(final["test_metrics"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert final["test_metrics"]["rouge1"] > 0.3  # "a ... review" is learned
    assert all(t["value"] > 0 for t in results["trials"]["tiny-summaries"])  # losses
    assert len(final["samples"]) == 5 and final["lengths"]["reference_words"] == 3.0
    assert final["finalized"] == {"source_prefix": "summarize: ", "max_new_tokens": 8, "num_beams": 1}
    out = study.parent / "runs" / "tiny-summaries"
    config = json.loads((out / "best-model" / "config.json").read_text())
    assert config["summarization_prefix"] == "summarize: " and config["is_encoder_decoder"]
    assert task_of_model(type("C", (), {"is_encoder_decoder": True})()) == "summarization"
    report = (out / "report.md").read_text()
    assert "### Sample outputs (test)" in report and "| source | reference | generated |" in report
    assert "AutoModelForSeq2SeqLM" in report and "--label-column gist" in report
    card = (out / "best-model" / "README.md").read_text()
    assert "pipeline_tag: summarization" in card and "task:\n      type: summarization" in card
    from hpo.report.card import build_card, check_card

    meta = check_card(build_card(load_study(study, read_only=True), results))  # what a Hub push checks
    assert meta["widget"][0]["text"].startswith("summarize: ") and "labels: " not in report

    predictions = tmp_path / "p.jsonl"
    assert main(["predict", str(out / "best-model"), str(tmp_path / "data" / "test.jsonl"), "--text-column",
                 "review", "--label-column", "gist", "--out", str(predictions)]) == 0
    written = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(written) == SIZES["test"] and all(w["predicted"].endswith("review") for w in written[:5])
    assert [w["reference"] for w in written] == [r["gist"] for r in reviews(SIZES["test"], 120)]
    from hpo.tasks.summarization import saved_settings

    assert saved_settings(str(out / "best-model")) == ("summarize: ", 8, 1)


def test_rouge_objective_generates_during_the_search(tmp_path: Path, tiny_t5: Path) -> None:
    study = _study(tmp_path, tiny_t5, objective={"metric": "rougeL"},
                   dataset={"generate_during_search": True, "generation_num_beams": 2})
    results = _run(study)
    assert results["objective"] == {"metric": "rougeL", "direction": "maximize"}
    values = [t["value"] for t in results["trials"]["tiny-summaries"]]
    assert all(0 <= v <= 1 for v in values) and max(values) > 0.3
    validation = results["final"]["validation_metrics"]
    assert {"eval_rouge1", "eval_rougeL", "eval_loss"} <= set(validation)


def test_lora_trains_adapters_and_merges_the_final_model(tmp_path: Path, tiny_t5: Path) -> None:
    study = _study(tmp_path, tiny_t5, peft={"r": 4, "lora_alpha": 8, "target_modules": ["q", "v"]}, top_k=2)
    results = _run(study)
    gate = results["selection"]["gate"]  # both trials' kept adapters generated the test summaries
    assert gate["test_metric"] == "rougeL" and len(gate["rows"]) == 2
    lora = results["final"]["lora"]
    assert lora["saved_as"] == "merged" and lora["target_modules"] == ["q", "v"]
    assert 0 < lora["trainable_parameters"] < lora["total_parameters"]
    folder = Path(results["final"]["path"])
    assert not (folder / "adapter_config.json").exists() and (folder / "model.safetensors").is_file()
    assert set(results["final"]["test_metrics"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}


def test_report_sections_render_without_a_run() -> None:
    task = get_task("summarization", {"source_prefix": "summarize: ", "target_column": "highlights"})
    final = {"validation_metrics": {"eval_loss": 2.5}, "test_metrics": {"rouge1": 0.4, "rougeL": 0.3},
             "lengths": {"generated_words": 12.0, "reference_words": 14.5},
             "samples": [{"source": "a | b", "reference": "r", "generated": "g"}]}
    blocks = task.report_sections(final, {"validation": 10, "test": 20}, model_ref="me/model", max_length=64)
    text = markdown.render([b for section in blocks.values() for b in section])
    assert "| rouge1 | – | 0.4000 |" in text and "| loss | 2.5000 | – |" in text
    assert '"summarize: A long text' in text and "max_new_tokens=64" in text and "a \\| b" in text
    assert "longer than 64 tokens" in text and "12.0 words on average" in text
    meta = task.card_metadata([{"text": "x", "summary": "y"}])
    assert meta["pipeline_tag"] == "summarization" and meta["widget"] == [{"text": "summarize: x"}]


def test_latency_objective_times_an_encoder_decoder_forward(tiny_t5: Path) -> None:
    from types import SimpleNamespace

    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from hpo.study.objectives import latency_ms

    tokenizer = AutoTokenizer.from_pretrained(tiny_t5)
    task = get_task("summarization", {"target_column": "gist"})
    data = to_dataset([{"text": r["review"], "summary": r["gist"]} for r in reviews(20)])
    encoded = data.map(task.encode_fn(tokenizer, max_length=32, label_names=[]), batched=True,
                       remove_columns=data.column_names)
    trainer = SimpleNamespace(eval_dataset=encoded, data_collator=task.collator(tokenizer),
                              model=AutoModelForSeq2SeqLM.from_pretrained(tiny_t5))
    assert latency_ms(trainer) > 0


def test_gate_noise_is_a_paired_bootstrap_of_per_example_rouge() -> None:
    task = get_task("summarization")
    a = {"rouge_rows": [[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]] * 10}
    b = {"rouge_rows": [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]] * 10}
    noise, kind = task.gate_noise("rougeL", a, b)
    assert 0 < noise < 0.5 and "bootstrap" in kind
    assert task.gate_noise("rougeL", a, a)[0] == 0.0 and task.gate_noise("loss", a, b) is None
