"""Token-level language-model scoring shared by the generative tasks: per-token losses during the search
(`preprocess_logits_for_metrics` keeps one number per token, not the vocabulary-wide logits) and held-out
loss and perplexity of a saved model."""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

IGNORE = -100  # the label of a token the loss skips (padding, a prompt)


def token_losses(logits: Any, labels: Any) -> Any:
    """Each position's loss on the next token (0 where the label is ignored): batch x (length - 1)."""
    import torch

    if isinstance(logits, tuple):
        logits = logits[0]
    shifted = labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), shifted.clamp(min=0),
                                               reduction="none")
    return losses.masked_fill(shifted == IGNORE, 0.0)


def perplexity_metrics(losses: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Token-weighted loss and perplexity from `token_losses` (padded by the Trainer with -100 across batches)."""
    losses, labels = np.asarray(losses, dtype=np.float64), np.asarray(labels)
    mask = labels[:, 1:1 + losses.shape[1]] != IGNORE
    width = mask.shape[1]
    counted = np.where(mask, losses[:, :width], 0.0)
    tokens = int(mask.sum())
    loss = float(counted.sum() / tokens) if tokens else float("nan")
    return {"perplexity": safe_exp(loss)}


def safe_exp(loss: float) -> float:
    return float(math.exp(min(loss, 700.0))) if math.isfinite(loss) else float("nan")


def held_out_losses(model: Any, encoded: Sequence[dict[str, Any]], *, pad_id: int,
                    batch_size: int = 16) -> tuple[list[list[float]], float]:
    """Per example (sum of token losses, tokens scored) of a causal LM on encoded rows, and ms per example.
    Rows are batched by length; padding is on the right and ignored."""
    import torch

    from hpo.devices import inference_torch_device

    device = inference_torch_device()
    model.to(device).eval()
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    out: list[list[float]] = [[0.0, 0.0]] * len(encoded)
    start = time.perf_counter()
    with torch.inference_mode():
        for at in range(0, len(order), batch_size):
            rows = [encoded[i] for i in order[at:at + batch_size]]
            width = max(len(r["input_ids"]) for r in rows)
            ids = torch.tensor([r["input_ids"] + [pad_id] * (width - len(r["input_ids"])) for r in rows])
            mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows])
            labels = torch.tensor([r["labels"] + [IGNORE] * (width - len(r["labels"])) for r in rows])
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            losses = token_losses(logits, labels.to(device)).cpu()
            counted = (labels[:, 1:] != IGNORE).sum(dim=1)
            for j, i in enumerate(order[at:at + batch_size]):
                out[i] = [float(losses[j].sum()), float(counted[j])]
    ms = 1000 * (time.perf_counter() - start) / max(1, len(encoded))
    return out, round(ms, 3)


def pooled(points: np.ndarray) -> float:
    """Token-weighted mean loss of (loss sum, tokens) rows: the gate's bootstrap statistic."""
    tokens = float(np.sum(points[:, 1]))
    return float(np.sum(points[:, 0]) / tokens) if tokens else float("nan")
