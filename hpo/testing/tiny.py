"""Tiny models for tests: a BERT, a GPT-2 and a T5 of a few thousand parameters with a word-level vocabulary."""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Any, Iterable

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def word_tokenizer(folder: Path, texts: Iterable[str], vocab_size: int) -> Any:
    """A BERT tokenizer whose vocabulary is the specials and the most common words of `texts` (saved in folder)."""
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    counts = collections.Counter(w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower()))
    words = [w for w, _ in counts.most_common(vocab_size - len(SPECIALS))]
    (folder / "vocab.txt").write_text("\n".join(SPECIALS + words) + "\n")
    return BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)  # vocab_file= is ignored in v5


def build_tiny_model(folder: Path, texts: Iterable[str], *, vocab_size: int = 200, hidden: int = 8,
                     num_labels: int = 2) -> Path:
    """Save a tiny BERT and its tokenizer (vocabulary from the most common words of `texts`)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = Path(folder)
    tokenizer = word_tokenizer(folder, texts, vocab_size)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128,
                        num_labels=num_labels)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_causal_lm(folder: Path, texts: Iterable[str], *, vocab_size: int = 200, hidden: int = 16) -> Path:
    """Save a tiny GPT-2 with a word-level tokenizer. Like many LLM tokenizers, it starts a text with a begin
    token ([CLS]) and does not end it: [SEP] is the end-of-text token, [PAD] pads."""
    import torch
    from tokenizers.processors import TemplateProcessing
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = Path(folder)
    words = word_tokenizer(folder, texts, vocab_size)
    ids = {t: SPECIALS.index(t) for t in SPECIALS}
    backend = words.backend_tokenizer
    backend.post_processor = TemplateProcessing(single="[CLS] $A", pair="[CLS] $A $B",
                                                special_tokens=[("[CLS]", ids["[CLS]"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="[CLS]", eos_token="[SEP]",
                                        pad_token="[PAD]", unk_token="[UNK]")
    config = GPT2Config(vocab_size=len(words), n_embd=hidden, n_layer=1, n_head=2, n_positions=128,
                        bos_token_id=ids["[CLS]"], eos_token_id=ids["[SEP]"], pad_token_id=ids["[PAD]"])
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_seq2seq(folder: Path, texts: Iterable[str], *, vocab_size: int = 400, hidden: int = 16) -> Path:
    """Save a tiny T5 (one encoder and one decoder layer) with the word-level tokenizer of `texts`: [PAD] pads and
    starts the decoder (as in T5), [SEP] ends a sequence."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    folder = Path(folder)
    tokenizer = word_tokenizer(folder, texts, vocab_size)
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in SPECIALS}
    config = T5Config(vocab_size=len(tokenizer), d_model=hidden, d_kv=hidden // 2, d_ff=2 * hidden,
                      num_layers=1, num_decoder_layers=1, num_heads=2, relative_attention_num_buckets=8,
                      pad_token_id=ids["[PAD]"], eos_token_id=ids["[SEP]"], decoder_start_token_id=ids["[PAD]"],
                      tie_word_embeddings=False)
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
