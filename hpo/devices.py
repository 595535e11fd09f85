"""Devices: which GPU each process trains on, the precision it trains in, and what a trial ran on.

One trial per device, by design. Every hpo process that trains sees exactly one GPU: its
CUDA_VISIBLE_DEVICES is set before CUDA starts, so the Trainer never spreads a trial over several GPUs
(DataParallel), and `hpo run --workers auto` starts one process per GPU on one study. GPUs are counted
with `torch.cuda.device_count()`, which asks NVML and leaves CUDA uninitialized, so the process can
still be pinned afterwards. A distributed launch (torchrun, accelerate launch) is refused: every rank
would run its own trials with its own sampled parameters.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from hpo import upstream
from hpo.errors import DeviceError

if TYPE_CHECKING:
    from hpo.spec import LoadedStudy

ENV = "CUDA_VISIBLE_DEVICES"
PRECISION_KEYS = {"bf16", "fp16", "bf16_full_eval", "fp16_full_eval"}


# -- what the hardware is (the seams tests replace) ---------------------------------------------------

@dataclass(frozen=True)
class Hardware:
    cuda: bool  # a CUDA (or ROCm) GPU this process trains on
    cuda_bf16: bool  # that GPU computes in bf16 natively (compute capability 8.0+, or ROCm)
    cpu_bf16: bool  # the CPU computes in bf16 natively (AVX512-BF16 or AMX)


@dataclass(frozen=True)
class Gpu:
    token: str  # how CUDA_VISIBLE_DEVICES names it: an index on the machine, or a UUID
    name: str
    memory_total: int  # bytes


def visible_gpu_count() -> int:
    """GPUs this process may use, counted without initializing CUDA (so it can still be pinned)."""
    if not _gpu_driver():  # then there is no GPU, and no need to import torch (seconds) to learn that
        return 0
    import torch

    return int(torch.cuda.device_count())


def _gpu_driver() -> bool:
    """An NVIDIA or AMD GPU driver is installed (device nodes, or NVML's library)."""
    if any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/kfd")):
        return True
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def hardware() -> Hardware:
    import torch

    cuda = bool(torch.cuda.is_available())
    cuda_bf16 = cuda and (bool(torch.version.hip) or torch.cuda.get_device_capability() >= (8, 0))
    cpu_bf16 = upstream.cpu_computes_bf16()
    return Hardware(cuda=cuda, cuda_bf16=cuda_bf16, cpu_bf16=cpu_bf16)


def current_gpu() -> Gpu | None:
    """The GPU this process trains on, None on a CPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    tokens = device_tokens(torch.cuda.device_count())
    return Gpu(token=tokens[index] if index < len(tokens) else str(index), name=props.name,
               memory_total=int(props.total_memory))


def inference_device() -> int | str:
    """Where pipelines score unseen data: the process's GPU (pinned by CUDA_VISIBLE_DEVICES) or the CPU."""
    import torch

    return 0 if torch.cuda.is_available() else "cpu"


def inference_torch_device() -> "torch.device":
    """`inference_device` as a torch.device, for code that runs a model itself (generate, held-out loss)."""
    import torch

    device = inference_device()
    return torch.device(f"cuda:{device}" if isinstance(device, int) else device)


# -- precision ----------------------------------------------------------------------------------------

def precision_defaults(training: dict[str, Any], hw: Hardware | None = None) -> dict[str, Any]:
    """The mixed precision a trial trains in unless the study file chooses: on a GPU bf16 where it computes
    bf16 natively, else fp16 (the Trainer scales the loss); on a CPU bf16 where native, else fp32. bf16 on an
    AVX512-BF16 CPU trains ~1.5x faster than fp32 (bench/bare_loop.py); master weights stay fp32."""
    if PRECISION_KEYS & training.keys():
        return {}
    hw = hw or hardware()
    if hw.cuda:
        return {"bf16": True} if hw.cuda_bf16 else {"fp16": True}
    return {"bf16": True} if hw.cpu_bf16 else {}


def precision_of(args: Any) -> str:
    """What TrainingArguments train in: bf16, fp16 or fp32."""
    return "bf16" if getattr(args, "bf16", False) else "fp16" if getattr(args, "fp16", False) else "fp32"


def evaluation_precision(precision: str) -> str:
    """The arithmetic unseen data is scored in when the trials trained in `precision`: the same autocast where
    the inference device computes it (accelerate runs the Trainer's model forward under the training autocast
    for evaluation too, so test and validation scores compare like for like), else fp32."""
    hw, gpu = hardware(), inference_device() != "cpu"
    native = hw.cuda_bf16 if gpu else hw.cpu_bf16
    return precision if precision == "bf16" and native or precision == "fp16" and gpu else "fp32"


@contextlib.contextmanager
def evaluation_arithmetic(precision: str) -> Iterator[str]:
    """Score unseen data under `evaluation_precision` (bf16 scores the test split ~1.6x faster than fp32 on
    an AVX512-BF16 CPU). Yields what ran: "bf16 autocast", "fp16 autocast" or "fp32"."""
    import torch

    chosen = evaluation_precision(precision)
    if chosen == "fp32":
        yield "fp32"
        return
    dtype = torch.bfloat16 if chosen == "bf16" else torch.float16
    with torch.autocast(inference_torch_device().type, dtype=dtype):
        yield f"{chosen} autocast"


# -- one device per process -----------------------------------------------------------------------------

def device_tokens(n: int) -> list[str]:
    """How CUDA_VISIBLE_DEVICES names the n GPUs this process sees: its own entries if set, else 0..n-1."""
    current = os.environ.get(ENV)
    if current is not None and current.strip():
        return [e.strip() for e in current.split(",") if e.strip()][:n]
    return [str(i) for i in range(n)]


def refuse_distributed_launch() -> None:
    world = os.environ.get("WORLD_SIZE", "1")
    if world.isdigit() and int(world) > 1:
        raise DeviceError(f"started as one of {world} distributed ranks (WORLD_SIZE={world}): every rank would "
                          "sample and run its own trials",
                          hint="start hpo once, with 'hpo run STUDY --workers auto': one trial per GPU")


def pin(token: str) -> None:
    """Make `token` the only GPU this process sees; only possible before CUDA starts in it."""
    import torch

    if torch.cuda.is_initialized():
        raise RuntimeError("CUDA is already initialized in this process: it can no longer be pinned to one GPU")
    os.environ[ENV] = token


@dataclass(frozen=True)
class LocalPlan:
    """Who trains where on this machine: the coordinator and its extra local workers."""

    workers: int  # extra local worker processes
    coordinator: str | None = None  # CUDA_VISIBLE_DEVICES for this process; None: left as it is
    worker_devices: list[str | None] = field(default_factory=list)  # the same for each worker
    note: str | None = None


def parse_workers(text: str) -> int | str:
    value = text.strip().lower()
    if value == "auto":
        return "auto"
    if value.isdigit():
        return int(value)
    raise ValueError(f"{text!r} is not a number of processes (0, 1, 2, ...) or 'auto' (one per visible GPU)")


def plan_local(workers: int | str, tokens: list[str], *, sqlite: bool) -> LocalPlan:
    """`hpo run --workers N|auto` on a machine whose visible GPUs CUDA_VISIBLE_DEVICES names `tokens`.

    auto: one process per GPU (this one on the first); no GPU: no extra workers, as without the option.
    SQLite takes one process, so auto there trains on the first GPU only. N: round robin over the GPUs.
    """
    n = len(tokens)
    if not n:
        return LocalPlan(workers=0 if workers == "auto" else int(workers))
    if workers == "auto":
        if sqlite and n > 1:
            return LocalPlan(0, tokens[0], [], f"{n} GPUs visible, but SQLite takes one process: training on GPU "
                             f"{tokens[0]} only (a PostgreSQL storage runs one trial on each GPU)")
        workers = n - 1
    devices: list[str | None] = [tokens[(i + 1) % n] for i in range(int(workers))]
    note = None
    if n > 1:
        note = f"{n} GPUs visible: this process trains on GPU {tokens[0]}"
        note += f", workers on {', '.join(f'GPU {d}' for d in devices)}" if devices else ""
        note += "" if len(devices) >= n - 1 else " (--workers auto: one trial on each GPU)"
    return LocalPlan(int(workers), tokens[0], devices, note)


def pin_first_gpu() -> list[str]:
    """For `hpo run`, before anything starts CUDA in this process (loading the study does, to check the training
    arguments): refuse a distributed launch, find the visible GPUs, pin this process to the first. Returns all of
    them, as CUDA_VISIBLE_DEVICES names them, for `plan_run`."""
    refuse_distributed_launch()
    tokens = device_tokens(visible_gpu_count())
    if tokens:
        pin(tokens[0])
    return tokens


def plan_run(study: "LoadedStudy", workers: int | str, tokens: list[str]) -> LocalPlan:
    from hpo.study.storage import is_sqlite

    return plan_local(workers, tokens, sqlite=is_sqlite(study.paths.storage_url))


def setup_worker(device: int | None) -> str | None:
    """Pin `hpo worker` (and `hpo finalize`) to one GPU, before anything starts CUDA: `device` (an index among
    the visible GPUs), else the first when several are visible. Returns a line to show when hpo chose."""
    refuse_distributed_launch()
    tokens = device_tokens(visible_gpu_count())
    if device is not None:
        if not tokens:
            raise DeviceError(f"--device {device}: torch sees no GPU here (no CUDA build of torch, no driver, or "
                              "CUDA_VISIBLE_DEVICES is empty)", hint="leave --device out to train on the CPU")
        if device >= len(tokens):
            raise DeviceError(f"--device {device}: {len(tokens)} GPU(s) visible", hint=f"give 0 to {len(tokens) - 1}")
        pin(tokens[device])
        return None
    if len(tokens) > 1:
        pin(tokens[0])
        return f"{len(tokens)} GPUs visible: training on GPU {tokens[0]} (--device N for another)"
    return None


def worker_env(env: dict[str, str], device: str | None) -> dict[str, str]:
    """A local worker's environment: the coordinator's, pinned to `device`."""
    return env if device is None else {**env, ENV: device}


# -- what a trial ran on ----------------------------------------------------------------------------------

def trial_device() -> dict[str, Any]:
    """User attrs of a trial: its device, and for a GPU its name and memory."""
    gpu = current_gpu()
    if gpu is None:
        return {"device": "cpu"}
    return {"device": f"cuda:{gpu.token}", "gpu_name": gpu.name, "gpu_memory_total_mb": round(gpu.memory_total / 2**20)}


def ran_on(trials: list[Any]) -> dict[str, Any]:
    """What a study's trials ran on, from their user attrs: precisions, and trials per device."""
    precisions = sorted({t.user_attrs["precision"] for t in trials if t.user_attrs.get("precision")})
    devices: dict[str, int] = {}
    for t in trials:
        if device := t.user_attrs.get("device"):
            name = t.user_attrs.get("gpu_name")
            key = f"{device} ({name})" if name else device
            devices[key] = devices.get(key, 0) + 1
    peaks = [p for t in trials if isinstance(p := t.user_attrs.get("peak_memory_mb"), (int, float))]
    return {"precision": ", ".join(precisions) or None, "devices": dict(sorted(devices.items())),
            "peak_memory_mb": max(peaks) if peaks else None}
