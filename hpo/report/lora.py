"""The report's and card's LoRA section: base model, adapter settings, trainable parameters, how to load it."""

from __future__ import annotations

from typing import Any

from hpo.report.blocks import Block, Code, Heading, Para, Table, fmt
from hpo.report.facts import short_model


def lora_section(results: dict[str, Any], *, model_ref: str) -> list[Block]:
    lora = results["final"].get("lora")
    if not lora:
        return []
    base = lora.get("base_model") or results["final"]["model"]
    share = lora["trainable_parameters"] / max(1, lora["total_parameters"])
    modules = lora["target_modules"]
    rows = [["base model", f"`{short_model(base)}`"], ["r", lora["r"]], ["lora_alpha", fmt(lora["lora_alpha"])],
            ["lora_dropout", fmt(lora["lora_dropout"])],
            ["target modules", ", ".join(f"`{m}`" for m in modules) if isinstance(modules, list) else f"`{modules}`"],
            ["trainable parameters", f"{lora['trainable_parameters']:,} of {lora['total_parameters']:,} "
                                     f"({100 * share:.2f} %, the adapter and any task head)"],
            ["adapter size", f"{lora['adapter_bytes']:,} bytes"]]
    blocks: list[Block] = [Heading(2, "LoRA"), Para(
        "The base model's weights stayed frozen; a LoRA adapter (low-rank updates of the target modules) and the "
        "task head were trained. "
        + ("The adapter is merged into the base model, so this is a plain transformers model."
           if lora["saved_as"] == "merged" else
           "This repository holds the adapter only: load it on its base model with peft as below, and pass "
           "`model` where the examples pass the repository's name (`hpo predict` does this itself).")),
        Table(["setting", "value"], rows)]
    if lora["saved_as"] == "adapter":
        blocks.append(Code(
            "import transformers\nfrom peft import PeftModel\n\n"
            f'config = transformers.AutoConfig.from_pretrained("{model_ref}")  # the labels and the model class\n'
            f'base = getattr(transformers, config.architectures[0]).from_pretrained("{base}", config=config)\n'
            f'model = PeftModel.from_pretrained(base, "{model_ref}").merge_and_unload()\n'
            f'tokenizer = transformers.AutoTokenizer.from_pretrained("{model_ref}")', "python"))
    return blocks
