"""causal-lm: the study keys, encoding (loss on the completion only, packing), perplexity, and `hpo run` end to
end with a tiny GPT-2 and a real (word-level) tokenizer: held-out perplexity, sample generations, the card, a
push to the local Hub and `pipeline(model="user/repo")`, `hpo predict`, and LoRA."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from task_helpers import write_jsonl

from conftest import run_cli
from hpo.errors import SpecError
from hpo.spec import load_study
from hpo.tasks import Columns, Where, get_task
from hpo.tasks.language_modeling import IGNORE, perplexity_metrics, token_losses

TOKEN = "hf_causalTOKEN4hpoTests7Qw"
SUBJECTS = ["the cat", "the dog", "a bird", "my friend", "the old man"]
VERBS = ["sat on", "looked at", "ran to", "jumped over"]
OBJECTS = ["the mat", "the tree", "a house", "the river", "the red car"]


def sentences(n: int, seed: int) -> list[dict[str, str]]:
    """Prompt (subject and verb) and completion (object): a pattern a tiny model learns in a few epochs."""
    rng = random.Random(seed)
    return [{"prompt": f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)}", "completion": f"{rng.choice(OBJECTS)} ."}
            for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hpo.testing.tiny import build_tiny_causal_lm

    rows = sentences(200, 0)
    return build_tiny_causal_lm(tmp_path_factory.mktemp("lm") / "base",
                                [f"{r['prompt']} {r['completion']}" for r in rows], vocab_size=60, hidden=16)


def write_study(tmp_path: Path, base: Path, *, dataset: dict[str, Any] | None = None, **top: Any) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for split, (n, seed) in {"train": (240, 1), "validation": (40, 2), "test": (40, 3)}.items():
        rows = sentences(n, seed)
        write_jsonl(data / f"{split}.jsonl", [{**r, "text": f"{r['prompt']} {r['completion']}"} for r in rows])
    doc = {"name": "tiny-lm", "task": "causal-lm", "model": str(base),
           "dataset": {"train": "data/train.jsonl", "validation": "data/validation.jsonl",
                       "test": "data/test.jsonl", "max_length": 24,
                       **(dataset if dataset is not None else {"prompt_column": "prompt",
                                                               "completion_column": "completion",
                                                               "completion_prefix": " "})},
           "search": {"n_trials": 2, "evals_per_epoch": 1, "baseline": False,
                      "space": {"learning_rate": {"type": "float", "low": 1e-2, "high": 3e-2, "log": True}},
                      "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "none"}},
           "selection": {"top_k": 2},
           "training": {"num_train_epochs": 6, "per_device_train_batch_size": 16, "seed": 0}, **top}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# -- the study file ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset, message", [
    ({"prompt_column": "prompt"}, "dataset: prompt_column and completion_column go together"),
    ({"text_column": "text", "packing": True, "prompt_column": "prompt", "completion_column": "completion"},
     "packing joins plain texts"),
    ({"tokens_column": "tokens"}, "tokens_column is a key of token-classification, but the task is causal-lm"),
])
def test_bad_causal_lm_keys_are_one_line_errors(tmp_path: Path, tiny_lm: Path, dataset: dict[str, Any],
                                                message: str) -> None:
    with pytest.raises(SpecError) as e:
        load_study(write_study(tmp_path, tiny_lm, dataset=dataset))
    line = e.value.one_line()
    assert message in line and "\n" not in line


def test_objective_defaults_to_loss_and_accepts_perplexity(tmp_path: Path, tiny_lm: Path) -> None:
    study = load_study(write_study(tmp_path, tiny_lm))
    assert (study.spec.objective.metric, study.spec.objective.resolved_direction) == ("loss", "minimize")
    other = load_study(write_study(tmp_path, tiny_lm, objective={"metric": "perplexity"}))
    assert other.spec.objective.resolved_direction == "minimize"
    with pytest.raises(SpecError, match="causal-lm has no metric 'accuracy'"):
        load_study(write_study(tmp_path, tiny_lm, objective={"metric": "accuracy"}))


# -- data and encoding ------------------------------------------------------------------------------

def test_prepare_names_the_row_with_an_empty_completion() -> None:
    import datasets

    from hpo.errors import DataError

    task = get_task("causal-lm", {"prompt_column": "q", "completion_column": "a"})
    raw = {"train": datasets.Dataset.from_list([{"q": "x", "a": "y"}, {"q": "x", "a": " "}])}
    with pytest.raises(DataError, match="train row 3 has an empty text"):
        task.prepare(raw, where=Where("s.yaml", {"train": 1}))
    with pytest.raises(DataError, match="no column 'q'"):
        task.prepare({"train": datasets.Dataset.from_list([{"text": "x"}])}, where=Where())


def test_completion_alone_is_learned_and_survives_truncation(tiny_lm: Path) -> None:
    from transformers import AutoTokenizer

    task = get_task("causal-lm", {"prompt_column": "p", "completion_column": "c", "completion_prefix": " "})
    tok = task.prepare_tokenizer(AutoTokenizer.from_pretrained(tiny_lm))
    encode = task.encode_fn(tok, max_length=24, label_names=[])
    out = encode({"prompt": ["the cat sat on"], "completion": ["the mat ."]})
    ids, labels = out["input_ids"][0], out["labels"][0]
    completion = tok("the mat .", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert ids[-len(completion):] == completion and labels[-len(completion):] == completion
    assert set(labels[:-len(completion)]) == {IGNORE} and ids[0] == tok.bos_token_id  # the prompt: not learned
    assert out["length"] == [len(ids)]
    short = encode({"prompt": ["the cat sat on the river the tree"], "completion": ["the mat ."]})
    trimmed = task.encode_fn(tok, max_length=6, label_names=[])({"prompt": ["the cat sat on the river the tree"],
                                                                 "completion": ["the mat ."]})
    assert len(trimmed["input_ids"][0]) == 6 and trimmed["labels"][0][-len(completion):] == completion
    assert trimmed["input_ids"][0][:2] == short["input_ids"][0][-len(completion) - 2:-len(completion)]  # prompt's end


def test_packing_cuts_plain_texts_into_full_blocks(tiny_lm: Path) -> None:
    from transformers import AutoTokenizer

    task = get_task("causal-lm", {"packing": True}, columns=Columns(text="text"))
    tok = task.prepare_tokenizer(AutoTokenizer.from_pretrained(tiny_lm))
    texts = [f"{r['prompt']} {r['completion']}" for r in sentences(20, 5)]
    out = task.encode_fn(tok, max_length=8, label_names=[])({"prompt": [""] * 20, "completion": texts})
    total = sum(len(tok(t)["input_ids"]) + 1 for t in texts)  # [CLS] text [SEP]: each text ends with end-of-text
    assert [len(b) for b in out["input_ids"]] == [8] * (total // 8)
    assert out["labels"] == out["input_ids"]
    assert sum(b.count(tok.eos_token_id) for b in out["input_ids"]) >= len(texts) - 1  # the tail (< 8) is dropped


def test_perplexity_is_exp_of_the_token_weighted_loss() -> None:
    import torch

    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[IGNORE, IGNORE, 3, 4, 1], [IGNORE, 2, 2, IGNORE, IGNORE]])
    losses = token_losses(logits, labels)
    reference = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 7), labels[:, 1:].reshape(-1),
                                                  ignore_index=IGNORE)
    padded = np.full((2, 6), IGNORE, dtype=np.float32)  # the Trainer pads predictions across batches with -100
    padded[:, :4] = losses.numpy()
    wide_labels = np.full((2, 7), IGNORE)
    wide_labels[:, :5] = labels.numpy()
    got = perplexity_metrics(padded, wide_labels)["perplexity"]
    assert got == pytest.approx(math.exp(float(reference)), rel=1e-5)


# -- end to end -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_causal_lm_study_runs_pushes_and_generates(tmp_path: Path, tiny_lm: Path) -> None:
    from hpo.testing.hub_server import LocalHub

    study = write_study(tmp_path, tiny_lm, hub={"repo_id": "user/tiny-lm"})
    with LocalHub(tmp_path / "hub", tokens={TOKEN}) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0",
               "HF_HOME": str(tmp_path / "hf")}
        r = run_cli("run", str(study), env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "the model learns to write completion after prompt" in r.stderr
        from_hub = _generate_from_hub("user/tiny-lm", ["the cat sat on", "a bird ran to"],
                                      {**env, "HF_HOME": str(tmp_path / "fresh"), "HF_TOKEN": ""})
    out = tmp_path / "runs" / "tiny-lm"
    results = json.loads((out / "results.json").read_text())
    final = results["final"]
    test = final["test_metrics"]
    assert test["perplexity"] == pytest.approx(math.exp(test["loss"]))
    untrained = get_task("causal-lm", {"prompt_column": "prompt", "completion_column": "completion",
                                       "completion_prefix": " "}).evaluate(
        str(tiny_lm), _test_split(tmp_path), [], max_length=24)["metrics"]
    assert test["loss"] < untrained["loss"] - 1.0, (test, untrained)  # it learned the completions
    assert final["tokens"] > 40 and len(final["samples"]) == 5
    objects = {w for o in OBJECTS for w in o.split()}
    assert any(set(s["generated"].split()) & objects for s in final["samples"]), final["samples"]
    assert results["selection"]["gate"]["test_metric"] == "loss"

    report = (out / "report.md").read_text()
    assert "### Sample generations (test, greedy)" in report and "| loss |" in report
    assert "predicted_vs_true" not in report and "labels:" not in report
    card = (out / "best-model" / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and 'pipeline("text-generation"' in card
    assert from_hub["task"] == "text-generation"
    assert all(o[0]["generated_text"].strip() for o in from_hub["out"]), from_hub

    r = run_cli("predict", str(out / "best-model"), str(tmp_path / "data" / "test.jsonl"), "--text-column",
                "prompt", "--label-column", "completion", "--out", str(tmp_path / "p.jsonl"))
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["task"] == "causal-lm" and summary["rows"] == 40
    assert summary["metrics"]["perplexity"] == pytest.approx(math.exp(summary["metrics"]["loss"]))
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and all({"text", "generated", "label"} <= set(r) for r in rows)


@pytest.mark.slow
def test_lora_on_plain_packed_text_keeps_adapters_and_serves_a_merged_model(tmp_path: Path, tiny_lm: Path) -> None:
    study = write_study(tmp_path, tiny_lm, dataset={"text_column": "text", "packing": True},
                        peft={"r": 4, "lora_alpha": 16, "target_modules": ["c_attn"]},
                        search={"n_trials": 2, "evals_per_epoch": 1, "baseline": False, "keep_checkpoints": 2,
                                "space": {"learning_rate": {"type": "float", "low": 1e-2, "high": 3e-2},
                                          "peft.r": {"type": "categorical", "choices": [2, 4]}},
                                "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "none"}})
    r = run_cli("run", str(study), "--no-push")
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "runs" / "tiny-lm"
    kept = sorted((out / "trials").rglob("adapter_config.json"))
    assert kept and all(json.loads(p.read_text())["task_type"] == "CAUSAL_LM" for p in kept)
    results = json.loads((out / "results.json").read_text())
    lora = results["final"]["lora"]
    assert lora["saved_as"] == "merged" and lora["r"] in (2, 4) and lora["target_modules"] == ["c_attn"]
    best = out / "best-model"
    assert not (best / "adapter_config.json").exists()
    assert json.loads((best / "config.json").read_text())["architectures"] == ["GPT2LMHeadModel"]
    assert math.isfinite(results["final"]["test_metrics"]["perplexity"])


def _test_split(tmp_path: Path) -> Any:
    import datasets

    rows = [json.loads(line) for line in (tmp_path / "data" / "test.jsonl").read_text().splitlines()]
    return datasets.Dataset.from_dict({"prompt": [r["prompt"] for r in rows],
                                       "completion": [r["completion"] for r in rows]})


def _generate_from_hub(repo: str, prompts: list[str], env: dict[str, str]) -> dict[str, Any]:
    code = textwrap.dedent("""
        import json, sys
        from transformers import pipeline
        pipe = pipeline(model=sys.argv[1])
        out = pipe(json.loads(sys.argv[2]), max_new_tokens=4, do_sample=False, return_full_text=False)
        print(json.dumps({"task": pipe.task, "out": out}))
    """)
    r = subprocess.run([sys.executable, "-c", code, repo, json.dumps(prompts)], capture_output=True, text=True,
                       env={**os.environ, **env}, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])
