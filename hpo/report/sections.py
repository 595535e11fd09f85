"""The report's content, section by section, from results.json and the study spec (pure: no I/O but sizes)."""

from __future__ import annotations

import shlex
from typing import Any, Sequence

from hpo.report.blocks import Block, Bullets, Code, Heading, Image, Para, Table, duration, fmt, seconds
from hpo.report.facts import (devices_text, parameter_count, pruner_text, sampler_text, short_model, space_text,
                              validation_metrics)

METRIC_ORDER = ["accuracy", "f1", "precision", "recall", "matthews_correlation", "loss"]


def _winner(results: dict[str, Any]) -> dict[str, Any]:
    name = results["final"]["study_name"]
    return next(m for m in results["models"] if m["study_name"] == name)


def _data_source(spec: Any) -> str:
    d = spec.dataset
    if d.source == "hub":
        return f"the Hub data set `{d.name}`" + (f" (configuration `{d.config}`)" if d.config else "")
    if d.source == "bbc_news":
        return "the BBC News corpus (business, entertainment, politics, sport, tech)"
    files = [f"`{getattr(d, s)}`" for s in ("train", "validation", "test") if getattr(d, s)]
    return "local files " + ", ".join(files)


def shown_metric(results: dict[str, Any], test: dict[str, Any]) -> str:
    """The test metric to show: the objective's, or (for loss) the first the test evaluation has."""
    metric = results["objective"]["metric"]
    return metric if metric in test else next(iter(test), metric)


def summary(results: dict[str, Any], spec: Any, *, title: str, task: Any) -> list[Block]:
    final, metric = results["final"], results["objective"]["metric"]
    counts = sum(m["counts"]["finished"] for m in results["models"])
    test = final["test_metrics"]
    shown = shown_metric(results, test)
    article = task.description
    return [Heading(1, title), Para(
        f"{article[0].upper()}{article[1:]} fine-tuned from `{short_model(final['model'])}` on {_data_source(spec)}. "
        f"Its hyperparameters were chosen by an Optuna search of {counts} trials (study `{results['study']}`) "
        f"that {results['objective']['direction']}d validation {metric}; the best trial (#{final['trial']}) "
        f"was then scored once on unseen test data: **{shown} {fmt(test.get(shown))}** on "
        f"{results['data']['test']} examples.")]


def how_to_use(model_ref: str, spec: Any) -> list[Block]:
    pair = spec.dataset.text_pair_column
    call = ('classifier({"text": "first sentence", "text_pair": "second sentence"})' if pair
            else 'classifier(["a sentence to classify", "another one"])')
    columns = spec.dataset.text_columns
    joined = ([Para(f"It was trained on {', '.join(f'`{c}`' for c in columns)} joined into one text with "
                    f"`{spec.dataset.text_separator!r}`: join them the same way.")] if len(columns) > 1 else [])
    return [Heading(2, "How to use"), *joined, Code(
        f'from transformers import pipeline\n\nclassifier = pipeline("text-classification", model="{model_ref}")\n'
        f"print({call})", "python"),
        Para("Or score a labelled file from the command line (predictions with scores, metrics, confusion matrix):"),
        Code(f"hpo predict {model_ref} new.csv " + " ".join(f"--text-column {shlex.quote(c)}" for c in columns)
             + (f" --text-separator {shlex.quote(spec.dataset.text_separator)}"
                if len(columns) > 1 and spec.dataset.text_separator != " " else "")
             + (f" --text-pair-column {pair}" if pair else "")
             + f" --label-column {spec.dataset.label_column} --out predictions.csv", "bash")]


def evaluation(results: dict[str, Any]) -> list[Block]:
    final = results["final"]
    val = validation_metrics(final["validation_metrics"])
    test = final["test_metrics"]
    names = [m for m in METRIC_ORDER if m in val or m in test] + sorted((set(val) | set(test)) - set(METRIC_ORDER))
    labels, cm = final["labels"], final["confusion_matrix"]
    per_class = final["per_class"]
    return [
        Heading(2, "Evaluation"),
        Para(f"Validation scores are those of the best trial ({results['data']['validation']} examples, used to "
             f"choose the hyperparameters, so slightly optimistic); test scores are the final model's on "
             f"{results['data']['test']} examples it never saw. Averages over classes are "
             f"{'macro' if 'f1' in test else 'not computed'}."),
        Table(["metric", "validation (best trial)", "test (unseen)"],
              [[n, val.get(n), test.get(n)] for n in names]),
        Heading(3, "Confusion matrix (test)"),
        Para("Rows are the true labels, columns the predicted ones."),
        Table(["true \\ predicted", *labels], [[lab, *row] for lab, row in zip(labels, cm)],
              first_column_header=True),
        Heading(3, "Per class (test)"),
        Table(["label", "precision", "recall", "f1", "support"],
              [[lab, c["precision"], c["recall"], c["f1"], c["support"]] for lab, c in per_class.items()]),
    ]


def _requested(s: dict[str, Any]) -> str:
    if not s.get("budget_s"):
        return f"{s['n_trials']} requested"
    from hpo.spec.duration import format_duration

    within = f"planned within a budget of {format_duration(s['budget_s'])}"
    return within if s.get("n_trials") is None else f"at most {s['n_trials']}, {within}"


def search(results: dict[str, Any]) -> list[Block]:
    s, final, winner = results["search"], results["final"], _winner(results)
    baseline = (winner.get("baseline") or {}).get("params", {})
    c = {k: sum(m["counts"][k] for m in results["models"]) for k in ("complete", "pruned", "failed")}
    timings = results.get("timings", {})
    per_model = " per base model" if len(results["models"]) > 1 else ""
    facts = [f"objective: {results['objective']['direction']} `{results['objective']['metric']}` on the "
             f"validation split",
             f"trials: {_requested(s)}{per_model}; {c['complete']} complete, {c['pruned']} pruned, "
             f"{c['failed']} failed",
             f"sampler: {sampler_text(s['sampler'])}", f"pruner: {pruner_text(s['pruner'])}",
             f"compute: {duration(timings.get('compute_s'))} of training and evaluation summed over trials"
             + (f", in {s['precision']}" if s.get("precision") else ""),
             *([f"devices: {devices_text(s)}"] if s.get("devices") else []),
             f"final model: {final['how']} from trial #{final['trial']}"
             + (f"; unseen data scored in {final['evaluated_in']}" if final.get("evaluated_in") else "")]
    rows = [[f"`{k}`", space_text(p), baseline.get(k), final["params"].get(k)] for k, p in s["space"].items()]
    blocks: list[Block] = [Heading(2, "Hyperparameter search"), Bullets(facts), Heading(3, "Hyperparameters"),
                           Table(["parameter", "search space", "baseline (Trainer defaults)", "best"], rows)]
    if s.get("training"):
        blocks.append(Para("Fixed for every trial: " + ", ".join(
            f"`{k}={v}`" for k, v in sorted(s["training"].items())) + "."))
    return blocks


def comparison(results: dict[str, Any]) -> list[Block]:
    metric, blocks = results["objective"]["metric"], [Heading(2, "Baseline vs best")]
    rows = []
    for m in results["models"]:
        prefix = f"{short_model(m['model'])}: " if len(results["models"]) > 1 else ""
        base = m.get("baseline")
        if base:
            rows.append([f"{prefix}baseline (Trainer defaults)", base["number"], base["state"].lower(),
                         base["value"], None, seconds(base.get("duration_s"))])
        test = m["test"]["metrics"].get(shown_metric(results, m["test"]["metrics"]))
        best_duration = next((t["duration_s"] for t in results["trials"].get(m["study_name"], [])
                              if t["number"] == m["best_trial"]), None)
        rows.append([f"{prefix}best", m["best_trial"], "complete", m["best_value"], test, seconds(best_duration)])
    if not any(m.get("baseline") for m in results["models"]):
        blocks.append(Para("The study ran without a baseline trial (search.baseline: false)."))
    shown = shown_metric(results, results["final"]["test_metrics"])  # for loss: a metric the test split has
    blocks.append(Table(["trial", "#", "state", f"validation {metric}", f"test {shown}", "seconds"], rows))
    if len(results["models"]) > 1:
        blocks += models_table(results)
    return blocks


def models_table(results: dict[str, Any]) -> list[Block]:
    metric, winner = results["objective"]["metric"], results["final"]["study_name"]
    rows = []
    for m in results["models"]:
        test = m["test"]["metrics"]
        size = parameter_count(m["path"])
        rows.append([("**" + short_model(m["model"]) + "** (chosen)") if m["study_name"] == winner
                     else short_model(m["model"]), m["best_value"], test.get(shown_metric(results, test)),
                     size, seconds(m["test"].get("latency_ms_per_example")), m["counts"]["complete"],
                     seconds(m["compute_s"])])
    return [Heading(3, "Base models compared"),
            Para("Each base model had its own search over the same data, space and budget; the one with the "
                 "best validation score became the final model. Latency is the pipeline's on CPU, per test "
                 "example."),
            Table(["base model", f"best validation {metric}",
                   f"test {shown_metric(results, results['final']['test_metrics'])}", "parameters",
                   "latency (ms/example)", "complete trials", "compute (s)"], rows)]


def training_data(results: dict[str, Any], spec: Any) -> list[Block]:
    d = results["data"]
    carved = d.get("carved_from_train") or []
    return [Heading(2, "Training data"), Bullets([
        f"source: {_data_source(spec)}",
        f"rows: {d['train']} train, {d['validation']} validation, {d['test']} test"
        + (f" ({' and '.join(carved)} carved from train, seed {spec.dataset.seed})" if carved else ""),
        *([f"labels: {', '.join(f'`{x}`' for x in d['labels'])}"] if d["labels"] else []),  # none: a summary
        f"inputs truncated to {spec.dataset.max_length} tokens"])]


def intended_use_and_limits(results: dict[str, Any], spec: Any) -> list[Block]:
    labels = ", ".join(results["data"]["labels"])
    return [
        Heading(2, "Intended use"),
        Para(f"Classifying texts like those of the training data into one of: {labels}. It is a starting "
             "point to check on your own data (for instance with `hpo predict` and a labelled sample), not a "
             "component to trust blindly."),
        Heading(2, "Limitations"),
        Bullets([
            f"The test score comes from {results['data']['test']} examples; small test sets give wide "
            "uncertainty, so differences of a point or two may be noise.",
            "Text that differs from the training data (domain, language, length, style) may score much lower.",
            f"Inputs longer than {spec.dataset.max_length} tokens are truncated: the end of long texts is ignored.",
            "The model always answers with one of the known labels, even for text that fits none.",
            "It inherits the biases of its base model and of the training data."])]


def plots(images: Sequence[tuple[str, str]], skipped: Sequence[str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Plots")]
    blocks += [Image(path, alt) for path, alt in images]
    if skipped:
        blocks.append(Bullets(list(skipped)))
    return blocks


def trials(results: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "All trials")]
    for name, records in results["trials"].items():
        if len(results["trials"]) > 1:
            blocks.append(Heading(3, f"study `{name}`"))
        keys = sorted({k for r in records for k in r["params"]})
        blocks.append(Table(["#", "state", "value", *keys, "seconds", "note"], [
            [r["number"], r["state"].lower(), r["value"], *[r["params"].get(k) for k in keys],
             seconds(r["duration_s"]), "baseline" if r["baseline"] else ""] for r in records]))
    return blocks
