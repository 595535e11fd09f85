"""The report's "Choosing the final model" section: held-out gate, multi-seed finalists, Pareto front, warm start."""

from __future__ import annotations

from typing import Any

from hpo.report.blocks import Block, Bullets, Heading, Para, Table, fmt


def selection(results: dict[str, Any]) -> list[Block]:
    sel = results.get("selection")
    if not sel:
        return []
    metric = results["objective"]["metric"]
    blocks: list[Block] = [Heading(2, "Choosing the final model")]
    parts = [pareto(sel.get("pareto")), gate(sel.get("gate"), metric), seeds(sel.get("multi_seed"), metric),
             warm_start(sel.get("warm_start"))]
    blocks += [b for part in parts for b in part]
    if len(blocks) == 1:
        blocks.append(Para(f"The best trial by validation {metric} became the final model "
                           f"(selection.top_k {sel['top_k']}, selection.seeds {sel['seeds']}: no gate, no reruns)."))
    return blocks


def gate(g: dict[str, Any] | None, metric: str) -> list[Block]:
    if not g:
        return []
    rows = [[f"#{r['trial']}", r["validation"], f"{r['validation_rank']:g}", r["test"], f"{r['test_rank']:g}",
             r["source"]] for r in g["rows"]]
    corr = (f"Rank correlation between validation and unseen scores: Spearman {fmt(g['spearman'], 2)}, "
            f"Kendall {fmt(g['kendall'], 2)}" if g["spearman"] is not None
            else "Rank correlation: undefined (fewer than 3 trials, or tied scores)")
    noise = (f" Noise: ±{fmt(g['noise'])} ({g['noise_kind']}, {g['test_metric']} on unseen data)."
             if g.get("noise") is not None else "")
    if g.get("warning"):
        verdict = f"**Warning:** {g['warning']}."
    elif g["unseen_winner"] != g["rows"][0]["trial"]:
        verdict = (f"The validation winner trails #{g['unseen_winner']} on unseen data by {fmt(g['gap'])}, within "
                   "the noise: the ranking is not contradicted.")
    else:
        verdict = "The validation winner is also the best of them on unseen data."
    if g["k"] < 5 and g["spearman"] is not None:
        verdict += f" With {g['k']} trials a rank correlation is only a rough signal."
    return [Heading(3, f"Held-out gate: top {g['k']} trials on unseen data"),
            Para(f"After the search, the {g['k']} best trials by validation were scored on the test split. This "
                 "only checks the validation ranking: the final model is never chosen by its test score."),
            Table(["trial", f"validation {g['validation_metric']}", "validation rank", f"test {g['test_metric']}",
                   "test rank", "model"], rows),
            Para(f"{corr}.{noise} {verdict}")]


def seeds(s: dict[str, Any] | None, metric: str) -> list[Block]:
    if not s:
        return []
    n = len(s["seeds"])
    rows = []
    for r in s["finalists"]:
        name = f"**#{r['trial']}** (chosen)" if r["trial"] == s["winner"] else f"#{r['trial']}"
        interval = f"{fmt(r['low'])} … {fmt(r['high'])}" if r.get("low") is not None else "–"
        rows.append([name, r["search_value"], r["mean"], f"±{fmt(r['half_width'])}" if r.get("half_width") is not None
                     else "–", interval, fmt(r["std"]), ", ".join(fmt(v) for v in r["values"].values())])
    changed = ("" if s["winner"] == s["search_winner"] else
               f" The search's best trial (#{s['search_winner']}) was not the best on average.")
    return [Heading(3, f"Finalists over {n} seeds"),
            Para(f"Each finalist was trained again with {n} fresh seeds ({', '.join(map(str, s['seeds']))}; the "
                 f"search's own run is not counted, it was picked for scoring well) and scored on validation. The "
                 f"final model is the finalist with the best mean {metric}, not the luckiest run.{changed}"),
            Table(["finalist", f"search {metric}", f"mean {metric}", "± (95%, t)", "95% interval", "std",
                   "per seed"], rows),
            Para(f"Promoted: the {s['promoted']} run of trial #{s['winner']} (seed {s['promoted_seed']}, the "
                 f"highest validation score among its seeds).")]


def pareto(p: dict[str, Any] | None) -> list[Block]:
    if not p:
        return []
    names = p["objectives"]
    rule = p["rule"]
    budget = ", ".join(f"`{k}` ≤ {fmt(v)}" for k, v in rule["budget"].items()) or "none"
    rows = [[f"**#{m['trial']}** (picked)" if m["trial"] == p["picked"] else f"#{m['trial']}",
             *[m["values"].get(n) for n in names], m["within_budget"]] for m in p["front"]]
    blocks: list[Block] = [
        Heading(3, "Pareto front"),
        Para("The study optimized " + ", ".join(f"{n} ({d})" for n, d in zip(names, p["directions"]))
             + ". Trials on the front are those no other trial beats on every objective."),
        Table(["trial", *names, "within budget"], rows),
        Bullets([f"rule: best `{rule['best']}` within the budget ({budget})",
                 f"picked: trial #{p['picked']}"])]
    if p.get("warning"):
        blocks.append(Para(f"**Warning:** {p['warning']}."))
    return blocks


def warm_start(w: dict[str, Any] | None) -> list[Block]:
    if not w:
        return []
    return [Heading(3, "Warm start"),
            Para(f"The search began with the {w['enqueued']} best configuration(s) of study `{w['study']}` "
                 f"(in {w['storage']}, top {w['top']}), restricted to this search space, before the sampler took "
                 "over.")]
