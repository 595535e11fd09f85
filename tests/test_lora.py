"""LoRA and model-config knobs: the peft section and the peft.* / model.* search keys, adapter-only kept
checkpoints, the merged or adapter final model, and one `hpo run` end to end."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli, search_context
from hpo.errors import SpecError
from hpo.spec import load_study

LORA_SPACE = {"learning_rate": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
              "peft.r": {"type": "categorical", "choices": [2, 4]},
              "peft.lora_alpha": {"type": "categorical", "choices": [8, 16]},
              "model.hidden_dropout_prob": {"type": "float", "low": 0.0, "high": 0.3}}


def lora_study(make_study: Any, **overrides: Any) -> Path:
    return make_study(peft={"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]},
                      search__space=LORA_SPACE, search__n_trials=2, search__baseline=False,
                      training={"num_train_epochs": 1, "seed": 0}, **overrides)


# -- the study file ---------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    ({"peft": {"lora_alfa": 8}}, "peft.lora_alfa: unknown key (did you mean 'lora_alpha'?)"),
    ({"peft": {"r": 0}}, "peft.r"),
    ({"search__space": {"peft.r": {"type": "categorical", "choices": [4]}}}, "has no peft section"),
    ({"peft": {"r": 4}, "search__space": {"peft.lora_dropuot": {"type": "categorical", "choices": [0.1]}}},
     "did you mean 'peft.lora_dropout'?"),
    ({"peft": {"r": 4}, "search__space": {"peft.task_type": {"type": "categorical", "choices": ["SEQ_CLS"]}}},
     "hpo sets this LoraConfig field itself"),
    ({"peft": {"r": 4}, "search__space": {"peft.lora_dropout": {"type": "float", "low": 0.0, "high": 1.5}}},
     "search.space.peft.lora_dropout"),
    ({"search__space": {"model.hidden_dropout": {"type": "float", "low": 0.0, "high": 0.2}}},
     "did you mean 'model.hidden_dropout_prob'?"),
    ({"search__space": {"model.hidden_dropout_prob": {"type": "categorical", "choices": ["high"]}}},
     "takes a number"),
    ({"search__space": {"model.num_hidden_layers": {"type": "int", "low": 1, "high": 2}}},
     "num_hidden_layers is not a real-valued setting"),
    ({"final": {"save": "adapter"}}, "final.save: adapter needs a peft section"),
])
def test_bad_peft_and_model_keys_are_one_line_errors(make_study: Any, overrides: dict[str, Any],
                                                     message: str) -> None:
    with pytest.raises(SpecError) as e:
        load_study(make_study(**overrides))
    line = e.value.one_line()
    assert message in line and "\n" not in line


def test_missing_peft_names_the_extra(make_study: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "peft", None)  # import peft raises ImportError
    with pytest.raises(SpecError) as e:
        load_study(make_study(peft={"r": 4}))
    assert "peft: the peft section needs the peft package" in e.value.one_line()
    assert "pip install 'hpo[lora]'" in e.value.one_line()


def test_lora_keys_validate_and_stay_out_of_training_arguments(make_study: Any, tmp_path: Path) -> None:
    from hpo.search.setup import training_arguments

    study = load_study(lora_study(make_study))
    params = {"learning_rate": 0.01, "peft.r": 2, "model.hidden_dropout_prob": 0.2}
    args = training_arguments(study, tmp_path, params)
    assert args.learning_rate == 0.01 and not hasattr(args, "peft.r") and not hasattr(args, "r")


def test_the_sst2_lora_study_validates() -> None:
    from conftest import REPO

    spec = load_study(REPO / "studies" / "sst2-lora.yaml").spec
    assert spec.peft is not None and spec.peft.target_modules == "all-linear" and spec.final.save == "merged"
    assert {"learning_rate", "peft.r", "peft.lora_alpha", "peft.lora_dropout"} == set(spec.search.space)


# -- the model a trial trains ------------------------------------------------------------------------

def test_a_trials_values_reach_its_model(make_study: Any) -> None:
    """peft.r shapes the adapter, model.hidden_dropout_prob the config and the dropout modules; the head trains."""
    import optuna
    import torch

    ctx = search_context(lora_study(make_study))
    trainer = ctx.trainer
    trial = optuna.trial.FixedTrial({"learning_rate": 0.01, "peft.r": 2, "peft.lora_alpha": 16,
                                     "model.hidden_dropout_prob": 0.25})
    assert trainer.hp_space_fn(trial) == {"learning_rate": 0.01}  # what reaches TrainingArguments
    model = trainer.model_init(trial)  # the search draws every key first, then builds the trial's model
    config = model.peft_config["default"]
    assert (config.r, config.lora_alpha, set(config.target_modules)) == (2, 16, {"query", "value"})
    lora_a = next(m for n, m in model.named_modules() if n.endswith("query.lora_A.default"))
    assert lora_a.weight.shape[0] == 2
    base = model.get_base_model()
    assert base.config.hidden_dropout_prob == 0.25
    assert base.bert.embeddings.dropout.p == 0.25
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("classifier" in n for n in trainable) and any("lora_" in n for n in trainable)
    assert not any("word_embeddings" in n for n in trainable)
    assert torch.equal(base.bert.embeddings.word_embeddings.weight,
                       trainer.base_model._template.bert.embeddings.word_embeddings.weight)


@pytest.mark.parametrize("task", ["token-classification", "multi-label-classification", "text-regression"])
def test_every_task_gets_an_adapter_and_a_trainable_head(task: str, tiny_model: Path) -> None:
    from hpo.adapters import build_model
    from hpo.models import BaseModel
    from hpo.spec.lora import PeftSpec
    from hpo.tasks import get_task

    labels = ["score"] if task == "text-regression" else ["a", "b", "c"]
    base = BaseModel(str(tiny_model), id2label=dict(enumerate(labels)), task=get_task(task))
    model = build_model(base, peft=PeftSpec(r=2), params={"peft.lora_dropout": 0.1})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".classifier." in n and "modules_to_save" in n for n in trainable), trainable
    assert model.peft_config["default"].lora_dropout == 0.1


def test_a_configuration_trained_outside_the_search_gets_its_values(make_study: Any) -> None:
    """The final retrain, the gate's retrains and seed runs build their Trainer from the trial's params."""
    from hpo.data import prepare_splits
    from hpo.search.setup import build_trainer

    study = load_study(lora_study(make_study))
    params = {"learning_rate": 0.02, "peft.r": 2, "peft.lora_alpha": 16, "model.hidden_dropout_prob": 0.2}
    trainer = build_trainer(study, study.spec.models[0], prepare_splits(study), checkpoints=None, params=params)
    assert trainer.args.learning_rate == 0.02
    assert trainer.model.peft_config["default"].r == 2
    assert trainer.model.get_base_model().config.hidden_dropout_prob == 0.2


@pytest.mark.parametrize("task", ["token-classification", "multi-label-classification", "text-regression"])
def test_a_saved_adapter_loads_back_as_the_same_model(task: str, tiny_model: Path, tmp_path: Path) -> None:
    import torch

    from hpo.adapters import build_model, load_adapter_model, save_model
    from hpo.models import BaseModel
    from hpo.spec.lora import PeftSpec
    from hpo.tasks import get_task

    labels = ["score"] if task == "text-regression" else ["a", "b", "c"]
    model = build_model(BaseModel(str(tiny_model), id2label=dict(enumerate(labels)), task=get_task(task)),
                        peft=PeftSpec(r=2, init_lora_weights=False), params={})  # non-zero updates to merge

    class Saving:  # what save_model reads of a Trainer
        processing_class = None

        def __init__(self) -> None:
            self.model = model

        def save_model(self, out: str) -> None:
            model.save_pretrained(out)

    save_model(Saving(), tmp_path / "adapter")
    loaded = load_adapter_model(tmp_path / "adapter")
    assert type(loaded).__name__ == type(model.get_base_model()).__name__
    ids = torch.randint(5, 100, (2, 7))
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, loaded(input_ids=ids).logits, atol=1e-5)


# -- saved models -------------------------------------------------------------------------------------

def _texts() -> list[str]:
    from conftest import sst2_rows

    return [r["sentence"] for r in sst2_rows("validation", 20)]


def test_hpo_run_keeps_adapters_and_merges_the_final_model(make_study: Any, tmp_path: Path) -> None:
    """One LoRA study end to end: kept trials hold adapters only, the final model is merged (a plain pipeline
    loads it and predicts what the adapter model predicts), report and card name the LoRA settings; then
    final.save: adapter keeps the adapter as the final model, which `hpo predict` loads from a Hub repo."""
    import yaml
    from transformers import pipeline

    from hpo.adapters import load_adapter_model
    from hpo.testing.hub_server import LocalHub

    study_file = lora_study(make_study)
    r = run_cli("run", str(study_file), "--no-push")
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "runs" / "tiny"
    kept = sorted((out / "trials" / "tiny").glob("trial-*"))
    assert kept
    for folder in kept:
        assert (folder / "adapter_model.safetensors").is_file() and not (folder / "model.safetensors").exists()
        assert json.loads((folder / "config.json").read_text())["id2label"] == {"0": "negative", "1": "positive"}
    final = out / "best-model"
    assert (final / "model.safetensors").is_file() and not (final / "adapter_config.json").exists()
    full = (final / "model.safetensors").stat().st_size
    assert all((k / "adapter_model.safetensors").stat().st_size < full / 5 for k in kept)
    results = json.loads((out / "results.json").read_text())
    trial = results["final"]["trial"]
    lora = results["final"]["lora"]
    assert lora["r"] == results["final"]["params"]["peft.r"]
    assert 0 < lora["trainable_parameters"] < lora["total_parameters"] / 5
    assert "LoRA" in (final / "README.md").read_text() and "LoRA" in (out / "report.md").read_text()

    merged = pipeline("text-classification", model=str(final))
    adapter = pipeline("text-classification", model=load_adapter_model(out / "trials" / "tiny" / f"trial-{trial}"),
                       tokenizer=str(final))
    texts = _texts()
    a, b = merged(texts), adapter(texts)
    assert [x["label"] for x in a] == [x["label"] for x in b]
    assert [x["score"] for x in a] == pytest.approx([x["score"] for x in b], abs=1e-4)

    doc = yaml.safe_load(study_file.read_text())
    doc["final"] = {"save": "adapter"}
    study_file.write_text(yaml.safe_dump(doc))
    r = run_cli("finalize", str(study_file))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (final / "adapter_model.safetensors").is_file() and not (final / "model.safetensors").exists()
    card = (final / "README.md").read_text()
    assert "library_name: peft" in card and "PeftModel.from_pretrained" in card and "| base model |" in card
    data = tmp_path / "new.txt"
    data.write_text("".join(t.replace("\n", " ") + "\n" for t in texts[:5]))  # one text per line
    with LocalHub(tmp_path / "hub") as hub:  # the adapter pushed as is, predicted by its repo id
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0",
               "HF_TOKEN": "hf_test", "HF_HOME": str(tmp_path / "hf")}
        code = ("import sys; from huggingface_hub import HfApi; api = HfApi(); api.create_repo('user/tiny-lora'); "
                "api.upload_folder(repo_id='user/tiny-lora', folder_path=sys.argv[1])")
        up = subprocess.run([sys.executable, "-c", code, str(final)], capture_output=True, text=True, env=env)
        assert up.returncode == 0, up.stderr[-2000:]
        r = run_cli("predict", "user/tiny-lora", str(data), "--out", str(tmp_path / "pred.csv"), env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    with open(tmp_path / "pred.csv", newline="") as fh:
        predicted = [row["predicted"] for row in csv.DictReader(fh)]
    assert predicted == [x["label"] for x in a[:5]]
