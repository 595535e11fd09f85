"""Length-grouped training batches: little padding, every row once per epoch, batches in random order."""

from __future__ import annotations

import random

import pytest
import torch
from transformers.trainer_pt_utils import get_length_grouped_indices

from hpo.search.batches import LengthBucketSampler

_RNG = random.Random(0)
LENGTHS = [_RNG.randint(3, 60) for _ in range(2003)]
BS = 16


def batches(order: list[int]) -> list[list[int]]:
    return [order[i:i + BS] for i in range(0, len(order), BS)]


def padded(order: list[int]) -> int:
    return sum(BS * max(LENGTHS[i] for i in b) for b in batches(order))


def rises(order: list[int]) -> float:
    """Share of consecutive full batches whose longest row is longer than the previous batch's."""
    tops = [max(LENGTHS[i] for i in b) for b in batches(order) if len(b) == BS]
    return sum(b > a for a, b in zip(tops, tops[1:])) / (len(tops) - 1)


def test_every_row_once_and_the_short_batch_last() -> None:
    torch.manual_seed(0)
    order = LengthBucketSampler(LENGTHS, BS).order()
    assert sorted(order) == list(range(len(LENGTHS)))
    assert len(batches(order)[-1]) == len(LENGTHS) % BS
    assert len(LengthBucketSampler(LENGTHS, BS)) == len(LENGTHS)


def test_padding_is_as_low_as_the_trainers_grouping() -> None:
    torch.manual_seed(0)
    ours = padded(LengthBucketSampler(LENGTHS, BS).order())
    stock = padded(get_length_grouped_indices(LENGTHS, BS, generator=torch.Generator().manual_seed(0)))
    shuffled = padded(torch.randperm(len(LENGTHS), generator=torch.Generator().manual_seed(0)).tolist())
    assert ours <= 1.02 * stock
    assert ours < 0.75 * shuffled


def test_batches_come_in_random_order_not_long_to_short() -> None:
    torch.manual_seed(0)
    ours = rises(LengthBucketSampler(LENGTHS, BS).order())
    stock = rises(get_length_grouped_indices(LENGTHS, BS, generator=torch.Generator().manual_seed(0)))
    assert stock < 0.05  # each mega-batch is a sweep from the longest rows to the shortest
    assert 0.35 < ours < 0.65


def test_the_trainer_seed_decides_the_order() -> None:
    torch.manual_seed(3)
    first = LengthBucketSampler(LENGTHS, BS).order()
    torch.manual_seed(3)
    assert LengthBucketSampler(LENGTHS, BS).order() == first
    assert LengthBucketSampler(LENGTHS, BS).order() != first  # the next epoch draws anew


def test_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        LengthBucketSampler(LENGTHS, 0)
