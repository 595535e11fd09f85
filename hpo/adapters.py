"""The model of one configuration, with LoRA when the study has a `peft:` section, and how such models are saved
and loaded.

`build_model` is the one place a configuration becomes a model: the search's trials, the final retrain, the
gate's retrains and the seed runs all get theirs here. A LoRA model is saved as its adapter (the adapter
weights and the task head, a few hundred kB) next to the full model's config.json (labels, a multi-label
threshold) and the tokenizer, so everything that reads a saved model's config works unchanged; the final model
is merged back into a plain model unless `final.save: adapter`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.spec.namespaces import split_params

if TYPE_CHECKING:
    from hpo.models import BaseModel
    from hpo.spec.lora import PeftSpec

ADAPTER_CONFIG = "adapter_config.json"


def lora_config(peft: "PeftSpec", searched: dict[str, Any], *, task_type: str) -> Any:
    from peft import LoraConfig

    return LoraConfig(task_type=task_type, **{**peft.lora_kwargs(), **searched})


def build_model(base: "BaseModel", *, peft: "PeftSpec | None", params: dict[str, Any]) -> Any:
    """A fresh model for a configuration: the base with the configuration's model.* values in its config,
    wrapped with its LoRA adapter (the peft section under its peft.* values) when the study has one."""
    split = split_params(params)
    model = base.build(split.model)
    if peft is None:
        return model
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():  # peft asks a deprecated transformers name; not the user's to fix
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        return get_peft_model(model, lora_config(peft, split.peft, task_type=base.task.peft_task_type))


def is_adapter(model: str | Path) -> bool:
    """A saved adapter: a folder with adapter_config.json, or a Hub repo that has one."""
    path = Path(model).expanduser()
    if path.exists() or isinstance(model, Path):
        return (path / ADAPTER_CONFIG).is_file()
    try:
        from huggingface_hub import file_exists

        return file_exists(str(model), ADAPTER_CONFIG)
    except Exception:  # offline, or not a repo id: loaded as a plain model, which says what is wrong
        return False


def save_model(trainer: Any, out: Path, *, base_name: str | None = None) -> None:
    """The trainer's model (adapter only for a LoRA model, plus the model's config.json) and tokenizer to `out`.
    `base_name` replaces the base model's local path in adapter_config.json (a Hub id, for the card)."""
    trainer.save_model(str(out))
    if trainer.processing_class is not None:
        trainer.processing_class.save_pretrained(str(out))
    model = trainer.model
    if is_adapter(out):
        (out / "README.md").unlink(missing_ok=True)  # peft's empty card template; hpo writes the final model's
        base = model.get_base_model()
        base.config.architectures = [type(base).__name__]  # the class load_adapter_model builds
        base.config.save_pretrained(str(out))
        if base_name is not None:
            path = out / ADAPTER_CONFIG
            config = json.loads(path.read_text())
            config["base_model_name_or_path"] = base_name
            path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_adapter(folder: str | Path, *, base_dir: str = ".", trainable: bool = False) -> Any:
    """The saved adapter (folder or Hub repo) on its base model: a PeftModel; the config, with the labels, is
    the adapter's."""
    import transformers
    from peft import PeftConfig, PeftModel

    from hpo.models import resolve_model

    base_name = PeftConfig.from_pretrained(str(folder)).base_model_name_or_path  # a folder or a Hub repo
    config = transformers.AutoConfig.from_pretrained(str(folder))
    auto = getattr(transformers, (config.architectures or ["AutoModelForSequenceClassification"])[0])
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "newly initialized head": not this model's
    try:
        # the base's own head may have another shape (another label set): the adapter brings the trained head
        base = auto.from_pretrained(resolve_model(base_name, base_dir), config=config, ignore_mismatched_sizes=True)
    finally:
        transformers.logging.set_verbosity(verbosity)
    return PeftModel.from_pretrained(base, str(folder), is_trainable=trainable)


def load_adapter_model(folder: str | Path, *, base_dir: str = ".") -> Any:
    """The saved adapter merged into its base model: a plain transformers model."""
    return load_adapter(folder, base_dir=base_dir).merge_and_unload()


def pipeline_model(model: str) -> Any:
    """What `pipeline(model=...)` gets for a saved model: its folder or repo id, or for an adapter folder the
    merged model."""
    return load_adapter_model(model) if is_adapter(model) else model


def settle_adapter(folder: Path, *, save: str) -> dict[str, Any] | None:
    """A final model saved as an adapter: its LoRA summary; with `save: merged` the adapter is replaced by the
    merged full model (config, tokenizer and other files stay). None for a model without LoRA."""
    if not is_adapter(folder):
        return None
    model = load_adapter(folder, trainable=True)  # trainable: its parameter counts are the training's
    summary = lora_summary(model)
    summary["adapter_bytes"] = sum(f.stat().st_size for f in folder.glob("adapter_model.*"))
    summary["saved_as"] = save
    if save == "merged":
        model.merge_and_unload().save_pretrained(str(folder))  # before the adapter goes: a crash loses neither
        for name in (ADAPTER_CONFIG, "adapter_model.safetensors", "adapter_model.bin"):
            (folder / name).unlink(missing_ok=True)
    return summary


def lora_summary(model: Any) -> dict[str, Any] | None:
    """The LoRA settings of a model and its trainable parameters vs total (None for a model without LoRA)."""
    config = getattr(model, "peft_config", {}).get("default") if hasattr(model, "peft_config") else None
    if config is None:
        return None
    trainable, total = model.get_nb_trainable_parameters()
    modules = config.target_modules
    return {"base_model": config.base_model_name_or_path, "r": config.r, "lora_alpha": config.lora_alpha,
            "lora_dropout": config.lora_dropout,
            "target_modules": sorted(modules) if isinstance(modules, (set, list)) else modules,
            "trainable_parameters": int(trainable), "total_parameters": int(total)}
