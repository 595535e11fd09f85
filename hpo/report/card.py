"""The model card: huggingface_hub `ModelCard` with metadata (base model, data, model-index, license, tags)
and a body made of the report's sections; the README.md of best-model/ and of the pushed repo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpo.report import markdown, sections
from hpo.report.lora import lora_section
from hpo.spec.schema import NAME_RE, REPO_ID_RE

TAGS = ["text-classification", "optuna", "hyperparameter-search", "hpo"]


def _hub_id(name: str | None) -> str | None:
    """Only real Hub ids belong in metadata; local folders do not."""
    if not name or Path(name).expanduser().exists() or not REPO_ID_RE.match(name):
        return None
    return name


def dataset_id(spec: Any) -> str | None:
    """The Hub id of the training data: where source hub loads it from, or what files/bbc_news name it."""
    name = spec.dataset.name
    if not name or Path(name).expanduser().exists():
        return None
    return name if REPO_ID_RE.match(name) or NAME_RE.match(name) else None  # 'user/data' or a canonical 'glue'


def card_data(results: dict[str, Any], spec: Any) -> Any:
    from huggingface_hub import EvalResult, ModelCardData

    from hpo.tasks import study_task

    meta = study_task(spec).card_metadata(results["data"].get("examples", []))
    final = results["final"]
    data = dataset_id(spec)
    model_name = spec.hub.repo_id.split("/")[-1] if spec.hub else spec.name
    evals = [EvalResult(task_type=meta["task_type"], task_name=meta["task_name"],
                        dataset_type=data or spec.name, dataset_name=data or f"{spec.name} (test split)",
                        dataset_config=spec.dataset.config if data else None, dataset_split="test",
                        metric_type=name, metric_name=name.replace("_", " ").title(), metric_value=float(value))
             for name, value in final["test_metrics"].items() if isinstance(value, (int, float))]
    return ModelCardData(
        model_name=model_name, base_model=_hub_id(final["model"]), datasets=[data] if data else None,
        license=spec.hub.license if spec.hub else None, library_name=_library(final),
        pipeline_tag=meta["pipeline_tag"], tags=list(dict.fromkeys([*meta["tags"], *TAGS, *(["lora"] if final.get("lora") else [])])),
        metrics=sorted(final["test_metrics"]), eval_results=evals, **({"widget": meta["widget"]} if meta["widget"] else {}))


def _library(final: dict[str, Any]) -> str:
    """peft for an adapter-only model (the Hub shows how to load it); else transformers."""
    return "peft" if (final.get("lora") or {}).get("saved_as") == "adapter" else "transformers"


def body_blocks(results: dict[str, Any], spec: Any, *, model_ref: str, title: str) -> list[Any]:
    from hpo.tasks import study_task

    task = study_task(spec)
    own = task.report_sections(results["final"], results["data"], model_ref=model_ref,
                               max_length=spec.dataset.max_length)
    return [*sections.summary(results, spec, title=title, task=task), *lora_section(results, model_ref=model_ref),
            *own["how_to_use"], *own["evaluation"],
            *sections.comparison(results), *sections.search(results), *sections.training_data(results, spec),
            *own["intended_use"]]


def model_ref(study: Any) -> str:
    """What `pipeline(model=...)` gets: the Hub repo when the study pushes there, else the local folder."""
    return study.spec.hub.repo_id if study.spec.hub else str(study.paths.output_dir / "best-model")


def build_card(study: Any, results: dict[str, Any]) -> Any:
    from huggingface_hub import ModelCard

    spec = study.spec
    data = card_data(results, spec)
    body = markdown.render(body_blocks(results, spec, model_ref=model_ref(study), title=data.model_name))
    extra = ("\nThe full study report (plots, every trial) is in `report/report.html` of this repository.\n"
             if spec.hub and spec.hub.push_report else "")
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}{extra}")


def check_card(card: Any) -> dict[str, Any]:
    """Local validation of the card metadata: parses back into the same model-index and fields.

    Raises ValueError when something would not survive the Hub's parsing. Returns the metadata dict.
    """
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard_data import model_index_to_eval_results

    meta = card.data.to_dict()
    again = ModelCard(str(card)).data.to_dict()
    if again != meta:
        raise ValueError("card metadata does not round-trip through the YAML header")
    ModelCardData(**meta, ignore_metadata_errors=False)
    name, results = model_index_to_eval_results(meta["model-index"])
    if not results or any(r.metric_value is None or not r.dataset_type for r in results):
        raise ValueError("model-index has no usable results")
    if meta.get("pipeline_tag") not in ("text-classification", "token-classification", "summarization"):
        raise ValueError("pipeline_tag must be text-classification, token-classification or summarization")
    return meta
