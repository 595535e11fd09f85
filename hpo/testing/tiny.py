"""Tiny models for tests: a BERT (and a T5) of a few thousand parameters with a word-level vocabulary."""

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


def build_tiny_seq2seq(folder: Path, texts: Iterable[str], *, vocab_size: int = 400, hidden: int = 16) -> Path:
    """Save a tiny T5 (one encoder and one decoder layer) with the word-level tokenizer of `texts`: [PAD] pads and
    starts the decoder (as in T5), [SEP] ends a sequence."""
    import torch
    from transformers import BertTokenizerFast, T5Config, T5ForConditionalGeneration

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    counts = collections.Counter(w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower()))
    words = [w for w, _ in counts.most_common(vocab_size - len(SPECIALS))]
    (folder / "vocab.txt").write_text("\n".join(SPECIALS + words) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in SPECIALS}
    config = T5Config(vocab_size=len(SPECIALS) + len(words), d_model=hidden, d_kv=hidden // 2, d_ff=2 * hidden,
                      num_layers=1, num_decoder_layers=1, num_heads=2, relative_attention_num_buckets=8,
                      pad_token_id=ids["[PAD]"], eos_token_id=ids["[SEP]"], decoder_start_token_id=ids["[PAD]"],
                      tie_word_embeddings=False)
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
