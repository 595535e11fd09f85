"""The study file's `peft:` section: PEFT's LoraConfig fields hpo passes on (checked against the installed peft
in namespaces.py)."""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import Field

from hpo.spec.strict import Strict


class PeftSpec(Strict):
    """PEFT's LoraConfig fields hpo passes on; absent ones keep peft's defaults. The task's head is trained in
    full (peft's task type SEQ_CLS / TOKEN_CLS puts it in modules_to_save)."""

    r: int | None = Field(None, ge=1, description="LoRA rank (peft default 8); searchable as peft.r.")
    lora_alpha: int | float | None = Field(None, gt=0, description="LoRA scaling numerator: the update is scaled by "
                                                              "lora_alpha / r (peft default 8); searchable.")
    lora_dropout: float | None = Field(None, ge=0, lt=1, description="Dropout on the LoRA path (peft default 0); "
                                                                     "searchable.")
    target_modules: Union[list[str], str, None] = Field(
        None, description="Modules that get adapters: a list of names (e.g. [query, value]), a regular "
                          "expression, or 'all-linear'; default: peft's choice for the model type.")
    exclude_modules: Union[list[str], str, None] = Field(None, description="Modules never adapted.")
    bias: Literal["none", "all", "lora_only"] | None = Field(None, description="Which biases train (default none).")
    modules_to_save: list[str] | None = Field(
        None, description="More modules trained in full and saved with the adapter (the task head already is).")
    use_rslora: bool | None = Field(None, description="Rank-stabilized scaling lora_alpha / sqrt(r).")
    use_dora: bool | None = Field(None, description="Weight-decomposed LoRA (DoRA).")
    init_lora_weights: Union[bool, str, None] = Field(None, description="Adapter initialization (true, false, "
                                                                        "gaussian, pissa, olora, ...).")
    layers_to_transform: Union[list[int], int, None] = Field(None, description="Only these layer indices.")
    rank_pattern: dict[str, int] | None = Field(None, description="Per-module ranks (regex -> r).")
    alpha_pattern: dict[str, float] | None = Field(None, description="Per-module alphas (regex -> lora_alpha).")

    def lora_kwargs(self) -> dict[str, Any]:
        """The fields the file gave, as LoraConfig keywords."""
        return {k: v for k, v in self.model_dump().items() if v is not None}
