"""Devices, faked where this machine has none: one process per GPU, each pinned to its own; the precision each
device trains in; what every trial ran on, in the store, results.json and the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import run_cli, search_context

from hpo import devices, pipeline
from hpo.cli import main
from hpo.devices import Gpu, Hardware, LocalPlan, plan_local
from hpo.errors import DeviceError
from hpo.spec import load_study

GPU_BF16 = Hardware(cuda=True, cuda_bf16=True, cpu_bf16=False)  # e.g. A100, H100, L4
GPU_FP16 = Hardware(cuda=True, cuda_bf16=False, cpu_bf16=True)  # e.g. T4, V100 (on a bf16 CPU)
CPU_BF16 = Hardware(cuda=False, cuda_bf16=False, cpu_bf16=True)  # AVX512-BF16 or AMX
CPU = Hardware(cuda=False, cuda_bf16=False, cpu_bf16=False)


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Pretend this machine has n GPUs; CUDA_VISIBLE_DEVICES as the test sets it, restored afterwards."""
    monkeypatch.delenv(devices.ENV, raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)

    def have(n: int, visible: str | None = None) -> None:
        monkeypatch.setattr(devices, "visible_gpu_count", lambda: n)
        if visible is not None:
            monkeypatch.setenv(devices.ENV, visible)
    return have


# -- which process trains on which GPU ------------------------------------------------------------------

@pytest.mark.parametrize(("workers", "tokens", "sqlite", "expected"), [
    ("auto", [], False, LocalPlan(0)),  # CPU only: as without the option
    ("auto", [], True, LocalPlan(0)),
    (2, [], False, LocalPlan(2)),  # CPU workers, as before
    ("auto", ["0"], True, LocalPlan(0, "0")),
    ("auto", ["0", "1", "2", "3"], False, LocalPlan(3, "0", ["1", "2", "3"])),
    ("auto", ["2", "3"], False, LocalPlan(1, "2", ["3"])),  # CUDA_VISIBLE_DEVICES=2,3 on the machine
    ("auto", ["0", "1"], True, LocalPlan(0, "0")),  # SQLite: one process, on the first GPU
    (3, ["0", "1"], False, LocalPlan(3, "0", ["1", "0", "1"])),  # round robin
    (0, ["0", "1"], False, LocalPlan(0, "0")),
])
def test_one_process_per_gpu(workers: Any, tokens: list[str], sqlite: bool, expected: LocalPlan) -> None:
    plan = plan_local(workers, tokens, sqlite=sqlite)
    assert (plan.workers, plan.coordinator, plan.worker_devices) == (
        expected.workers, expected.coordinator, expected.worker_devices)
    if len(tokens) > 1:  # the user is told where each process trains, and how to use every GPU
        assert plan.note and f"GPU {tokens[0]}" in plan.note
        assert ("SQLite" in plan.note) == (sqlite and workers == "auto")
        assert ("--workers auto" in plan.note) == (not sqlite and workers != "auto" and workers < len(tokens) - 1)
    else:
        assert plan.note is None


@pytest.mark.parametrize(("visible", "tokens"), [
    (None, ["0", "1", "2"]), ("4,5,6", ["4", "5", "6"]), ("GPU-8f2e, GPU-a1b2,GPU-c3d4", ["GPU-8f2e", "GPU-a1b2",
                                                                                          "GPU-c3d4"])])
def test_devices_are_named_as_cuda_visible_devices_names_them(gpus: Any, visible: str | None,
                                                              tokens: list[str]) -> None:
    gpus(3, visible)
    assert devices.device_tokens(3) == tokens


def test_local_workers_are_started_pinned_to_their_gpu(make_study: Any, monkeypatch: pytest.MonkeyPatch,
                                                      gpus: Any) -> None:
    gpus(3, "5,6,7")
    study = load_study(make_study(storage="postgresql+psycopg://hpo@db.example:5432/hpo"))
    plan = devices.plan_run(study, "auto", devices.pin_first_gpu())
    assert devices.os.environ[devices.ENV] == "5"  # this process: the first GPU only
    started: list[tuple[list[str], dict[str, str]]] = []

    class Popen:
        def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
            started.append((cmd, env))

    monkeypatch.setattr(pipeline.subprocess, "Popen", Popen)
    pipeline.start_local_workers(study, plan.workers, plan.worker_devices)
    assert [env[devices.ENV] for _, env in started] == ["6", "7"]
    for cmd, env in started:
        assert cmd[cmd.index("-m") + 1:cmd.index("-m") + 3] == ["hpo", "worker"]
        assert env["HPO_STORAGE"] == study.paths.storage_url


def test_a_worker_takes_the_gpu_it_is_given(gpus: Any) -> None:
    gpus(2, "3,7")
    assert devices.setup_worker(1) is None
    assert devices.os.environ[devices.ENV] == "7"


def test_a_worker_on_a_machine_with_several_gpus_takes_the_first_and_says_so(gpus: Any) -> None:
    gpus(4)
    note = devices.setup_worker(None)
    assert devices.os.environ[devices.ENV] == "0" and "4 GPUs" in note and "--device" in note


@pytest.mark.parametrize(("n", "device", "message"), [(0, 0, "torch sees no GPU"), (2, 2, r"2 GPU\(s\) visible")])
def test_a_device_that_is_not_there_is_refused(gpus: Any, n: int, device: int, message: str) -> None:
    gpus(n)
    with pytest.raises(DeviceError, match=message):
        devices.setup_worker(device)
    assert devices.ENV not in devices.os.environ


def test_device_option_on_this_machine_is_one_line(make_study: Any, capsys: pytest.CaptureFixture[str]) -> None:
    if devices.visible_gpu_count():
        pytest.skip("this machine has a GPU")
    assert main(["worker", str(make_study()), "--device", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --device 0: torch sees no GPU")


@pytest.mark.parametrize("command", ["run", "worker"])
def test_a_distributed_launch_is_refused(make_study: Any, monkeypatch: pytest.MonkeyPatch, gpus: Any,
                                         capsys: pytest.CaptureFixture[str], command: str) -> None:
    gpus(2)
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it for each rank
    assert main([command, str(make_study())]) == 2
    err = capsys.readouterr().err
    assert "WORLD_SIZE=2" in err and "--workers auto" in err and len(err.strip().splitlines()) == 1
    assert devices.ENV not in devices.os.environ


# -- precision ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("hw", "training", "expected"), [
    (GPU_BF16, {}, {"bf16": True}),
    (GPU_FP16, {}, {"fp16": True}),  # the Trainer scales the loss (GradScaler) in fp16
    (CPU_BF16, {}, {"bf16": True}),
    (CPU, {}, {}),  # fp32
    (GPU_BF16, {"bf16": False}, {}),  # the study file decides
    (GPU_FP16, {"fp16": False}, {}),
    (CPU, {"bf16": True}, {}),
])
def test_precision_follows_the_device_unless_the_study_file_says(hw: Hardware, training: dict,
                                                                 expected: dict) -> None:
    assert devices.precision_defaults(training, hw) == expected


@pytest.mark.parametrize(("hw", "name"), [(GPU_BF16, "bf16"), (GPU_FP16, "fp16"), (CPU_BF16, "bf16"), (CPU, "fp32")])
def test_the_study_names_the_precision_of_this_machine(make_study: Any, monkeypatch: pytest.MonkeyPatch,
                                                       hw: Hardware, name: str) -> None:
    from hpo.search.setup import precision_name

    monkeypatch.setattr(devices, "hardware", lambda: hw)
    assert precision_name(load_study(make_study())) == name


# -- what a trial ran on -----------------------------------------------------------------------------------

def test_a_trial_on_a_gpu_records_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "current_gpu", lambda: Gpu("3", "NVIDIA A100-SXM4-80GB", 80 * 2**30))
    assert devices.trial_device() == {"device": "cuda:3", "gpu_name": "NVIDIA A100-SXM4-80GB",
                                      "gpu_memory_total_mb": 81920}


def test_trials_record_device_precision_and_memory(make_study: Any) -> None:
    from hpo.search.runner import run_trials

    ctx = search_context(make_study(search={"n_trials": 2, "evals_per_epoch": 1, "pruner": {"name": "none"}},
                                    training={"num_train_epochs": 1, "seed": 0}))
    run_trials(ctx)
    trials = ctx.optuna_study.get_trials()
    expected = devices.precision_of(ctx.trainer.args)
    for t in trials:
        assert t.user_attrs["device"] == "cpu" and t.user_attrs["precision"] == expected
        assert 0 < t.user_attrs["memory_at_start_mb"] <= t.user_attrs["peak_memory_mb"]
    summary = devices.ran_on(trials)
    assert summary["precision"] == expected and summary["devices"] == {"cpu": 2}
    assert summary["peak_memory_mb"] == max(t.user_attrs["peak_memory_mb"] for t in trials)


def test_what_trials_ran_on_is_summed_over_workers() -> None:
    def trial(device: str, name: str | None, precision: str, peak: float) -> Any:
        attrs = {"device": device, "precision": precision, "peak_memory_mb": peak, **({"gpu_name": name} if name else {})}
        return optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.5, user_attrs=attrs)

    trials = [trial("cuda:0", "NVIDIA L4", "bf16", 900.0), trial("cuda:1", "NVIDIA L4", "bf16", 1200.5),
              trial("cuda:0", "NVIDIA L4", "bf16", 950.0), trial("cpu", None, "fp32", 3000.0)]
    summary = devices.ran_on(trials)
    assert summary == {"precision": "bf16, fp32", "peak_memory_mb": 3000.0,
                       "devices": {"cpu": 1, "cuda:0 (NVIDIA L4)": 2, "cuda:1 (NVIDIA L4)": 1}}
    from hpo.report.facts import devices_text

    assert devices_text(summary) == ("cpu: 1 trial, cuda:0 (NVIDIA L4): 2 trials, cuda:1 (NVIDIA L4): 1 trial; "
                                     "peak memory 3,000 MB per trial at most")


@pytest.mark.slow
def test_workers_auto_on_a_cpu_machine_runs_as_before_and_reports_what_ran(make_study: Any) -> None:
    if devices.visible_gpu_count():
        pytest.skip("this machine has a GPU")
    study = make_study(search__n_trials=2, training={"num_train_epochs": 1, "seed": 0})
    proc = run_cli("run", str(study), "--workers", "auto", "--no-push", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GPU" not in proc.stderr
    out = study.parent / "runs" / "tiny"
    search = json.loads((out / "results.json").read_text())["search"]
    assert search["devices"] == {"cpu": 2} and search["precision"] in ("fp32", "bf16")
    assert f"in {search['precision']}" in (out / "report.md").read_text()
    assert "devices: cpu: 2 trials; peak memory" in (out / "report.md").read_text()


@pytest.mark.slow
def test_workers_auto_with_two_gpus_runs_two_processes_on_one_study(make_study: Any, pg_server: Any, gpus: Any,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Two faked GPUs: this process trains on the first, and a real worker process, pinned to the second,
    joins the same PostgreSQL study (torch here is a CPU build: both really train on the CPU)."""
    gpus(2)
    started: list[tuple[Any, dict[str, str]]] = []
    real = pipeline.subprocess.Popen

    def spy(cmd: list[str], env: dict[str, str]) -> Any:
        started.append((real(cmd, env=env), env))
        return started[-1][0]

    monkeypatch.setattr(pipeline.subprocess, "Popen", spy)
    url = pg_server.create_db("devices_auto")
    study = make_study(storage=url, search__n_trials=4, search__heartbeat_interval=1,
                       training={"num_train_epochs": 1, "seed": 0})
    assert main(["run", str(study), "--workers", "auto", "--no-push"]) == 0
    assert "2 GPUs visible: this process trains on GPU 0, workers on GPU 1" in capsys.readouterr().err
    assert devices.os.environ[devices.ENV] == "0"
    assert [(proc.returncode, env[devices.ENV]) for proc, env in started] == [(0, "1")]
    trials = optuna.load_study(study_name="tiny", storage=url).get_trials()
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 4


# -- bench/gpu_check.sh -------------------------------------------------------------------------------------

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_the_gpu_check_is_valid_bash_documented_and_stops_at_once_without_a_gpu() -> None:
    import subprocess

    script = BENCH / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert "bash bench/gpu_check.sh" in (BENCH / "README.md").read_text()
    if devices.visible_gpu_count():
        pytest.skip("this machine has a GPU: the check would run")
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("gpu_check: no CUDA GPU visible to torch") and "CUDA build of torch" in line


def test_the_gpu_check_tells_flat_memory_from_a_leak() -> None:
    import sys

    sys.path.insert(0, str(BENCH))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(BENCH))
    model_mb = 87.0  # MiniLM-L6's weights in fp32
    steady = [{"number": i, "memory_at_start_mb": 91.0 + (i % 2) * 3, "state": "COMPLETE", "device": f"cuda:{i % 2}"}
              for i in range(8)]
    leaking = [dict(t, memory_at_start_mb=91.0 + t["number"] * 3 * model_mb) for t in steady]
    assert gpu_check.memory_flat(steady, model_mb)["flat"] is True
    assert gpu_check.memory_flat(leaking, model_mb)["flat"] is False
    assert gpu_check.per_device(steady) == {"cuda:0": 4, "cuda:1": 4}


def test_pipelines_score_unseen_data_on_the_process_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.inference_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.inference_device() == 0  # the one GPU CUDA_VISIBLE_DEVICES leaves this process


@pytest.mark.parametrize(("hw", "precision", "expected"), [
    (CPU_BF16, "bf16", "bf16 autocast"), (CPU, "bf16", "fp32"), (CPU_BF16, "fp32", "fp32"), (CPU_BF16, "fp16", "fp32"),
])
def test_unseen_data_is_scored_in_the_arithmetic_the_trials_were_validated_in(
        monkeypatch: pytest.MonkeyPatch, hw: Hardware, precision: str, expected: str) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "hardware", lambda: hw)
    with devices.evaluation_arithmetic(precision) as arithmetic:
        assert arithmetic == expected
        assert torch.is_autocast_enabled("cpu") is (expected != "fp32")
        if expected != "fp32":
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize(("hw", "precision", "expected"), [
    (GPU_BF16, "bf16", "bf16"), (GPU_FP16, "fp16", "fp16"), (GPU_FP16, "bf16", "fp32"), (GPU_BF16, "fp32", "fp32"),
])
def test_on_a_gpu_unseen_data_is_scored_in_the_gpus_arithmetic(monkeypatch: pytest.MonkeyPatch, hw: Hardware,
                                                               precision: str, expected: str) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(devices, "hardware", lambda: hw)
    assert devices.evaluation_precision(precision) == expected
