"""The study file on the happy path: defaults, paths relative to the study file, values typed as the Trainer wants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpo.cli import main
from hpo.spec import load_study
from hpo.spec.checks import normalized_training
from hpo.spec.schema import CategoricalParam, FloatParam, IntParam

MINIMAL = "name: mini\nmodel: sentence-transformers/all-MiniLM-L6-v2\ndataset:\n  train: data/train.csv\n"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    monkeypatch.delenv("HPO_OUTPUT_DIR", raising=False)
    (tmp_path / "studies" / "data").mkdir(parents=True)
    (tmp_path / "studies" / "data" / "train.csv").write_text("text,label\ngood,1\nbad,0\n")
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "studies" / "s.yaml"
    path.write_text(text)
    return path


def test_defaults(folder: Path) -> None:
    study = load_study(write(folder, MINIMAL))
    s = study.spec
    assert s.task == "text-classification"
    assert (s.dataset.source, s.dataset.text_column, s.dataset.label_column) == ("files", "text", "label")
    assert s.objective.metric == "accuracy" and s.objective.resolved_direction == "maximize"
    assert (s.search.n_trials, s.search.sampler.name, s.search.pruner.name) == (10, "tpe", "median")
    assert s.final.strategy == "reuse" and s.hub is None and s.training == {}
    assert s.models == ["sentence-transformers/all-MiniLM-L6-v2"]


def test_loss_objective_is_minimized(folder: Path) -> None:
    study = load_study(write(folder, MINIMAL + "objective: {metric: loss}\n"))
    assert study.spec.objective.resolved_direction == "minimize"


def test_paths_resolve_relative_to_the_study_file(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder)  # not the study's folder: paths must not depend on where hpo is run from
    study = load_study(write(folder, MINIMAL + "output_dir: out/here\n"))
    base = (folder / "studies").resolve()
    assert study.paths.base_dir == base
    assert study.resolve("data/train.csv") == base / "data" / "train.csv"
    assert study.paths.output_dir == base / "out" / "here"
    assert study.paths.storage_url == f"sqlite:///{base / 'mini.db'}"
    default_out = load_study(write(folder, MINIMAL)).paths.output_dir
    assert default_out == base / "runs" / "mini"


def test_absolute_paths_and_overrides(folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(folder, MINIMAL + f"output_dir: {tmp_path / 'abs'}\n")
    assert load_study(path).paths.output_dir == tmp_path / "abs"
    monkeypatch.setenv("HPO_OUTPUT_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("HPO_STORAGE", "sqlite:///env.db")
    study = load_study(path)
    assert study.paths.output_dir == tmp_path / "env" and study.paths.storage_url == "sqlite:///env.db"
    cli = load_study(path, storage="sqlite:///cli.db", output_dir=str(tmp_path / "cli"))
    assert cli.paths.output_dir == tmp_path / "cli" and cli.paths.storage_url == "sqlite:///cli.db"


def test_storage_env_reference_is_expanded(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPO_TEST_PW", "pw")
    study = load_study(write(folder, MINIMAL + "storage: postgresql+psycopg://u:${HPO_TEST_PW}@127.0.0.1/db\n"))
    assert study.paths.storage_url == "postgresql+psycopg://u:pw@127.0.0.1/db"


def test_yaml_exponent_string_becomes_a_float(folder: Path) -> None:
    # YAML 1.1 reads 1e-5 (no dot) as a string; the Trainer field is a float
    study = load_study(write(folder, MINIMAL + "training:\n  learning_rate: 1e-5\n  weight_decay: 0.01\n"))
    assert study.spec.training["learning_rate"] == "1e-5"
    values = normalized_training(study)
    assert values["learning_rate"] == 1e-5 and isinstance(values["learning_rate"], float)


def test_warmup_steps_ratio_stays_float(folder: Path) -> None:
    study = load_study(write(folder, MINIMAL + "training: {warmup_steps: 0.1, num_train_epochs: 2}\n"))
    values = normalized_training(study)
    assert values["warmup_steps"] == 0.1 and isinstance(values["warmup_steps"], float)
    study = load_study(write(folder, MINIMAL + "search:\n  space:\n    warmup_steps: {type: float, low: 0.0, "
                                               "high: 0.2}\n"))
    p = study.spec.search.space["warmup_steps"]
    assert isinstance(p, FloatParam) and isinstance(p.low, float) and isinstance(p.high, float)


def test_training_arguments_receive_the_typed_values(folder: Path) -> None:
    from hpo.search.setup import training_arguments

    study = load_study(write(folder, MINIMAL + "training: {learning_rate: 1e-5, warmup_steps: 0.1, seed: 3}\n"))
    args = training_arguments(study, folder / "out")
    assert args.learning_rate == 1e-5 and args.warmup_steps == 0.1 and args.seed == 3


def test_space_parameter_kinds(folder: Path) -> None:
    text = MINIMAL + ("search:\n  n_trials: 4\n  sampler: {name: grid}\n  space:\n"
                      "    learning_rate: {type: float, low: 1.0e-5, high: 3.0e-5, step: 1.0e-5}\n"
                      "    num_train_epochs: {type: int, low: 1, high: 3}\n"
                      "    per_device_train_batch_size: {type: categorical, choices: [8, 16]}\n")
    space = load_study(write(folder, text)).spec.search.space
    assert isinstance(space["learning_rate"], FloatParam) and space["learning_rate"].step == 1e-5
    assert isinstance(space["num_train_epochs"], IntParam) and space["num_train_epochs"].step == 1
    assert isinstance(space["per_device_train_batch_size"], CategoricalParam)


def test_validate_reports_ok(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(folder, MINIMAL)
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: ok") and err == ""


def test_validate_data_summarizes_the_rows(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = "".join(f"text number {i},{'pos' if i % 2 else 'neg'}\n" for i in range(20))
    (folder / "studies" / "data" / "train.csv").write_text("text,label\n" + rows)
    path = write(folder, MINIMAL)
    assert main(["validate", "--data", str(path)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith(f"{path}: data ok ("))
    summary = json.loads(line.split("data ok (", 1)[1].removesuffix(")"))
    assert summary["labels"] == ["neg", "pos"] and summary["train"] + summary["validation"] + summary["test"] == 20
    assert sorted(summary["carved_from_train"]) == ["test", "validation"]


def test_errors_report_the_path_as_given(folder: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    write(folder, MINIMAL + "search: {n_trials: 0}\n")
    monkeypatch.chdir(folder)
    assert main(["validate", "studies/s.yaml"]) == 2
    assert capsys.readouterr().err.startswith("error: studies/s.yaml: search.n_trials:")
    write(folder, MINIMAL.replace("data/train.csv", "data/missing.csv"))
    assert main(["validate", "studies/s.yaml"]) == 2
    assert "data file data/missing.csv does not exist" in capsys.readouterr().err


def test_no_code_runs_from_a_study_file(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = folder / "pwned"
    path = write(folder, f"name: !!python/object/apply:os.system ['touch {marker}']\n" + MINIMAL.split("\n", 1)[1])
    assert main(["validate", str(path)]) == 2
    assert not marker.exists()
    assert "YAML tag not allowed" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["run"], ["run", "a.yaml", "--workers", "many"], ["nonsense"]])
def test_command_line_mistakes_are_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from hpo.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "--help" in err
