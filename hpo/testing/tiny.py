"""Tiny models for tests: a BERT of a few thousand parameters with a word-level vocabulary."""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Iterable

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_model(folder: Path, texts: Iterable[str], *, vocab_size: int = 200, hidden: int = 8,
                     num_labels: int = 2) -> Path:
    """Save a tiny BERT and its tokenizer (vocabulary from the most common words of `texts`)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    counts = collections.Counter(w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower()))
    words = [w for w, _ in counts.most_common(vocab_size - len(SPECIALS))]
    (folder / "vocab.txt").write_text("\n".join(SPECIALS + words) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)  # vocab_file= is ignored in v5
    config = BertConfig(vocab_size=len(SPECIALS) + len(words), hidden_size=hidden, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128,
                        num_labels=num_labels)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_causal_lm(folder: Path, texts: Iterable[str], *, vocab_size: int = 200, hidden: int = 16) -> Path:
    """Save a tiny GPT-2 with the word-level vocabulary of `build_tiny_model`. Like many LLM tokenizers, it
    starts a text with a begin token ([CLS]) and does not end it: [SEP] is the end-of-text token, [PAD] pads."""
    import torch
    from tokenizers.processors import TemplateProcessing
    from transformers import BertTokenizerFast, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    counts = collections.Counter(w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower()))
    words = [w for w, _ in counts.most_common(vocab_size - len(SPECIALS))]
    (folder / "vocab.txt").write_text("\n".join(SPECIALS + words) + "\n")
    ids = {t: SPECIALS.index(t) for t in SPECIALS}
    backend = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True).backend_tokenizer
    backend.post_processor = TemplateProcessing(single="[CLS] $A", pair="[CLS] $A $B",
                                                special_tokens=[("[CLS]", ids["[CLS]"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="[CLS]", eos_token="[SEP]",
                                        pad_token="[PAD]", unk_token="[UNK]")
    config = GPT2Config(vocab_size=len(SPECIALS) + len(words), n_embd=hidden, n_layer=1, n_head=2, n_positions=128,
                        bos_token_id=ids["[CLS]"], eos_token_id=ids["[SEP]"], pad_token_id=ids["[PAD]"])
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
