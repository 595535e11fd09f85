"""Numbers the report needs that results.json does not hold directly: model sizes, search-space text."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from hpo.report.blocks import fmt


def parameter_count(model_dir: str | Path) -> int | None:
    """Parameters of a saved model, read from the safetensors headers (no weights loaded)."""
    total, found = 0, False
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        try:
            with open(f, "rb") as fh:
                (size,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(size))
        except (OSError, ValueError, struct.error):
            return None
        found = True
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total if found else None


def space_text(param: dict[str, Any]) -> str:
    if param.get("type") == "categorical":
        return "one of " + ", ".join(fmt(c) for c in param["choices"])
    text = f"{param['type']} {_g(param['low'])} … {_g(param['high'])}"
    if param.get("log"):
        text += ", log scale"
    if param.get("step") not in (None, 1):
        text += f", step {fmt(param['step'])}"
    return text


def _g(value: float) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def sampler_text(sampler: dict[str, Any]) -> str:
    extra = [f"seed {sampler['seed']}"] if sampler.get("seed") is not None else []
    if sampler.get("n_startup_trials") is not None:
        extra.append(f"{sampler['n_startup_trials']} random startup trials")
    return sampler["name"] + (f" ({', '.join(extra)})" if extra else "")


PRUNER_ARGS = {"median": ("n_startup_trials", "n_warmup_steps", "interval_steps"),
               "percentile": ("percentile", "n_startup_trials", "n_warmup_steps", "interval_steps"),
               "successive_halving": ("min_resource", "reduction_factor"),
               "hyperband": ("min_resource", "max_resource", "reduction_factor")}


def pruner_text(pruner: dict[str, Any]) -> str:
    if pruner["name"] == "none":
        return "none (every trial runs to the end)"
    args = ", ".join(f"{k}={pruner[k]}" for k in PRUNER_ARGS.get(pruner["name"], ()) if k in pruner)
    return f"{pruner['name']} ({args}; steps are percent of an epoch)" if args else pruner["name"]


def validation_metrics(raw: dict[str, Any]) -> dict[str, float]:
    """The Trainer's eval_* metrics of a trial, without the eval_ prefix and without timings."""
    skip = ("runtime", "samples_per_second", "steps_per_second", "epoch")
    return {k.removeprefix("eval_"): v for k, v in raw.items()
            if k.startswith("eval_") and not k.removeprefix("eval_").endswith(skip)}


def short_model(model: str) -> str:
    """A Hub id as is; a local folder by its last two parts."""
    p = Path(model)
    return model if not p.is_absolute() else "/".join(p.parts[-2:])


def devices_text(search: dict[str, Any]) -> str:
    """'cuda:0 (NVIDIA A100): 4 trials, cuda:1 (NVIDIA A100): 4 trials; peak memory 5,120 MB'."""
    text = ", ".join(f"{d}: {n} trial{'s' if n != 1 else ''}" for d, n in search["devices"].items())
    if search.get("peak_memory_mb") is not None:
        text += f"; peak memory {search['peak_memory_mb']:,.0f} MB per trial at most"
    return text
