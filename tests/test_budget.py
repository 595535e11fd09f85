"""A time budget: durations, the plan's arithmetic, the pruner it picks, and the runner stopping and cutting."""

from __future__ import annotations

import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest
from conftest import run_cli, search_context

from hpo.errors import SpecError
from hpo.spec.duration import format_duration, parse_duration
from hpo.study import budget as planning
from hpo.study.budget import Costs, Finals, Shape
from hpo.study.eta import seconds_left

# -- durations and the study file ----------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "seconds"), [
    ("30m", 1800.0), ("1h30m", 5400.0), ("90s", 90.0), ("2h", 7200.0), ("1h 5m 10s", 3910.0), ("45", 45.0),
    (12.5, 12.5), (600, 600.0), ("0.5m", 30.0)])
def test_durations_are_read_as_people_write_them(given: Any, seconds: float) -> None:
    assert parse_duration(given) == seconds


@pytest.mark.parametrize("bad", ["30 minutes", "m", "", "1d", "0", "-5", "1e999", True, [30]])
def test_a_bad_duration_says_how_to_write_one(bad: Any) -> None:
    with pytest.raises(ValueError, match="30m, 1h30m, 90s"):
        parse_duration(bad)


def test_durations_are_shown_short() -> None:
    assert [format_duration(s) for s in (45, 60, 272, 3900)] == ["45s", "1m", "4m32s", "1h05m"]


def test_budget_precedence_is_command_line_then_environment_then_file(
        make_study: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo.spec import load_study

    path = make_study(search={"budget": "10m", "space": {}})
    monkeypatch.delenv("HPO_BUDGET", raising=False)
    assert load_study(path).spec.search.budget == 600
    monkeypatch.setenv("HPO_BUDGET", "5m")
    assert load_study(path).spec.search.budget == 300
    study = load_study(path, budget="90s")
    assert study.spec.search.budget == 90
    assert study.spec.search.planned_trials  # no n_trials in the file: the budget plans them
    assert study.spec.search.trial_cap > 1000
    monkeypatch.setenv("HPO_BUDGET", "soon")
    with pytest.raises(SpecError, match="HPO_BUDGET: 'soon' is not a duration"):
        load_study(path)
    with pytest.raises(SpecError, match="--budget: 'half an hour' is not a duration"):
        load_study(path, budget="half an hour")


def test_n_trials_in_the_file_bounds_a_budgeted_study(make_study: Callable[..., Path]) -> None:
    from hpo.spec import load_study

    search = load_study(make_study(search={"n_trials": 4, "space": {}}), budget="1h").spec.search
    assert not search.planned_trials and search.trial_cap == 4


def test_a_bad_budget_in_the_file_is_one_line(make_study: Callable[..., Path]) -> None:
    path = make_study(search={"budget": "30 minutes", "space": {}})
    r = run_cli("validate", str(path))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "search.budget" in r.stderr and "30m, 1h30m, 90s" in r.stderr
    bad_cli = run_cli("run", str(make_study()), "--budget", "-3m")
    assert bad_cli.returncode == 2 and "--budget" in bad_cli.stderr and bad_cli.stderr.count("\n") == 1


def test_a_budget_picks_successive_halving_unless_the_file_names_a_pruner(make_study: Callable[..., Path]) -> None:
    from hpo.spec import load_study
    from hpo.study.factory import decision_points, resolved_pruner

    # 2 epochs on a grid of 2 points per epoch (50, 100, ...): the rung is the first point at or past 200/3
    study = load_study(make_study(search={"evals_per_epoch": 2, "space": {}}), budget="5m")
    pruner = resolved_pruner(study)
    assert (pruner.name, pruner.min_resource, pruner.reduction_factor) == ("successive_halving", 100, 3)
    points = decision_points(pruner)
    assert [p for p in (50, 100, 150, 200) if points.wanted(p, None if p == 50 else p - 50)] == [100]
    named = load_study(make_study(search={"pruner": {"name": "median"}, "space": {}}), budget="5m")
    assert resolved_pruner(named).name == "median"
    assert resolved_pruner(load_study(make_study(search={"space": {}}))).name == "median"  # no budget: as before


# -- the plan's arithmetic -------------------------------------------------------------------------------------

COSTS = Costs(train_per_example=0.01, eval_per_row=0.001, trial_overhead=1.0, test_overhead=2.0, test_per_row=0.002)
# 1,000 training rows: one percent of an epoch is 10 examples, 0.1 s; a full trial trains 200 percent
SHAPE = Shape(train_rows=1000, validation_rows=500, pruning_rows=100, test_rows=1000, full=200, rungs=(25, 75))


@pytest.mark.parametrize(("full", "per_epoch", "rungs"), [
    (200, 4, (75,)), (100, 4, (50,)), (300, 4, (100,)), (200, 3, (100,)), (25, 4, ()), (400, 10, (140,))])
def test_budget_rungs_sit_on_the_evaluation_grid(full: float, per_epoch: int, rungs: tuple[int, ...]) -> None:
    assert planning.budget_rungs(full, per_epoch) == rungs


def test_promotion_follows_optunas_rule() -> None:
    # the first trial at a rung always goes on; then the best of 2, 3, 4, 5; then the best 2 of 6, 3 of 11
    chances = [planning.promotion_chance(m, 3) for m in (0, 1, 2, 3, 4, 5, 10)]
    assert chances == pytest.approx([1.0, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 2 / 6, 3 / 11])


def test_the_first_trial_trains_to_the_end_and_later_ones_mostly_stop_early() -> None:
    seconds, full, population = planning.expected_trial(COSTS, SHAPE, ())
    # overhead 1 + to 25% (2.5 s) and 100 rows scored (0.1) + to 75% (5.0 + 0.1) + to 200% (12.5) and 500 rows (0.5)
    assert seconds == pytest.approx(21.7) and full == 1.0 and population == (1.0, 1.0)
    seconds, full, population = planning.expected_trial(COSTS, SHAPE, (8.0, 2.0))
    assert seconds == pytest.approx(1 + 2.6 + 5.1 / 3 + 13.0 / 9)
    assert full == pytest.approx(1 / 9) and population == pytest.approx((9.0, 2 + 1 / 3))


def test_final_stages_are_costed_from_the_measured_speeds() -> None:
    test = 2.0 + 1000 * 0.002  # load the model, score 1,000 unseen rows
    full_training = 1.0 + 200 * 10 * 0.01 + 500 * 0.001
    m, report = planning.FINAL_MARGIN, planning.REPORT_S
    assert planning.final_seconds(COSTS, SHAPE, Finals(top_k=1)) == pytest.approx(m * test + report)
    assert planning.final_seconds(COSTS, SHAPE, Finals(top_k=3)) == pytest.approx(m * 3 * test + report)
    assert planning.final_seconds(COSTS, SHAPE, Finals(top_k=3, seeds=2)) == pytest.approx(
        m * (3 * test + 6 * full_training + test) + report)
    assert planning.final_seconds(COSTS, SHAPE, Finals(top_k=1, models=2, retrain=True)) == pytest.approx(
        m * 2 * (full_training + test) + report)
    # a timed scorer's figures stand as they are; trainings keep their margin
    timed = dataclasses.replace(COSTS, scorer_timed=True)
    assert planning.final_seconds(timed, SHAPE, Finals(top_k=3)) == pytest.approx(3 * test + report)
    assert planning.final_seconds(timed, SHAPE, Finals(top_k=1, retrain=True)) == pytest.approx(
        m * full_training + test + report)
    # a task that settles a threshold on validation scores each gate candidate and the final model there first
    settled = dataclasses.replace(SHAPE, settle_rows=500)
    settle = 2.0 + 500 * 0.002
    assert planning.final_seconds(timed, settled, Finals(top_k=3)) == pytest.approx(
        3 * (settle + test) + settle + report)
    assert planning.final_seconds(timed, settled, Finals(top_k=1)) == pytest.approx(settle + test + report)


def test_the_keeper_counts_the_validation_rows_a_task_settles_on(
        make_study: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from hpo.search.budgeting import BudgetKeeper
    from hpo.spec import load_study
    from hpo.tasks.multi_label import MultiLabelClassification

    study = load_study(make_study(search={"space": {}}), budget="10m")
    ctx = SimpleNamespace(splits=SimpleNamespace(train=[0] * 240, validation=[0] * 80, test=[0] * 70),
                          trainer=SimpleNamespace())
    keeper = BudgetKeeper(study, started=time.time())
    assert keeper.shape(ctx, []).settle_rows == 0  # text classification settles nothing
    assert MultiLabelClassification.settles_on_validation  # its threshold is chosen on validation
    monkeypatch.setattr(type(study.task), "settles_on_validation", True)
    shape = keeper.shape(ctx, [])
    assert (shape.settle_rows, shape.validation_rows, shape.test_rows) == (80, 80, 70)


def test_the_plan_fills_the_time_left_after_the_final_stages() -> None:
    every = Shape(**{**SHAPE.__dict__, "rungs": ()})  # no pruning: every trial 21.5 s
    final = (2.0 + 2.0) * planning.FINAL_MARGIN + planning.REPORT_S
    plan = planning.make_plan(COSTS, every, Finals(), left_s=100, done=0, full_done=0)
    assert plan.final_s == pytest.approx(final) and plan.search_left_s == pytest.approx(100 - final)
    assert (plan.to_start, plan.trials, plan.full) == (4, 4, 4)  # 4 x 21.5 = 86 <= 92.6
    assert plan.ends_in_s == pytest.approx(86 + final)
    assert planning.make_plan(COSTS, every, Finals(), left_s=100, done=3, full_done=2, cap=5).trials == 5
    assert planning.make_plan(COSTS, every, Finals(), left_s=100, done=0, full_done=0, parallel=2).to_start == 8
    assert planning.make_plan(COSTS, every, Finals(), left_s=28, done=1, full_done=1).to_start == 0  # 21.5 > 20.6


def test_successive_halving_looks_at_more_configurations_and_trains_few_to_the_end() -> None:
    no_pruning = planning.make_plan(COSTS, Shape(**{**SHAPE.__dict__, "rungs": ()}), Finals(), left_s=600,
                                    done=0, full_done=0)
    halving = planning.make_plan(COSTS, SHAPE, Finals(), left_s=600, done=0, full_done=0)
    assert no_pruning.trials == no_pruning.full == 27
    assert halving.trials > 2 * no_pruning.trials and halving.full < halving.trials / 3
    text = planning.describe(halving, planning.rungs_text(SHAPE))
    assert text.startswith(f"about {halving.trials} trials, {halving.full} trained to the end (successive halving")


def test_a_look_to_the_first_rung_costs_the_training_to_it_and_the_pruning_rows() -> None:
    assert planning.first_look_s(COSTS, SHAPE) == pytest.approx(1.0 + 2.5 + 0.1)  # overhead, to 25%, 100 rows
    assert planning.first_look_s(COSTS, Shape(**{**SHAPE.__dict__, "rungs": ()})) is None


@pytest.mark.parametrize(("left_for_search", "starts"), [(6.0, True), (3.0, False)])
def test_the_last_trial_starts_when_its_look_at_the_first_rung_fits(
        make_study: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, left_for_search: float,
        starts: bool) -> None:
    """6 s left for the search: a trial's expected 8.1 s does not fit, its 3.6 s look to the first rung does."""
    from types import SimpleNamespace

    from hpo.live import TrialWatch
    from hpo.search.budgeting import BudgetKeeper
    from hpo.spec import load_study

    study = load_study(make_study(search={"space": {}}), budget="10m")
    monkeypatch.setattr(BudgetKeeper, "_costs", lambda self, trials, scoring=None: COSTS)
    monkeypatch.setattr(BudgetKeeper, "shape", lambda self, ctx, trials: SHAPE)
    optuna_study = optuna.create_study()
    for value in (0.5, 0.6, 0.7):  # three trials that reached the first rung, one of them the second
        optuna_study.add_trial(optuna.trial.create_trial(value=value, system_attrs={"completed_rung_0": value}))
    watch = TrialWatch(None)
    ctx = SimpleNamespace(optuna_study=optuna_study, trainer=SimpleNamespace(
        callback_handler=SimpleNamespace(callbacks=[watch])))
    final = planning.final_seconds(COSTS, SHAPE, Finals(top_k=3))
    said: list[str] = []
    keeper = BudgetKeeper(study, started=time.time() - 600 + final + left_for_search, say=said.append)
    expected = planning.expected_trial(COSTS, SHAPE, (3.0, 0.0))[0]
    assert expected > 6.0 > planning.first_look_s(COSTS, SHAPE) > 3.0
    assert keeper.should_start(ctx) is starts
    assert keeper.plan is not None and keeper.plan.to_start == 0
    if starts:  # cut at the search deadline if promoted
        assert watch.stop_at == pytest.approx(time.time() + left_for_search, abs=1.0)
    else:
        assert "no further trial fits" in said[-1]


def test_observed_costs_plan_other_pruners() -> None:
    plan = planning.make_plan(COSTS, SHAPE, Finals(), left_s=100, done=2, full_done=1, observed=(10.0, 0.5))
    assert plan.to_start == 9 and plan.full == 1 + round(4.5)  # 9 x 10 s in 100 - 7.4 s


def test_costs_are_measured_from_trial_profiles() -> None:
    profiles = [{"training": 10.0, "examples": 1000, "evaluation": 2.0, "eval_rows": 1000, "wall": 14.0,
                 "model_load": 0.5},
                {"training": 30.0, "examples": 3000, "evaluation": 2.0, "eval_rows": 1000, "wall": 34.0,
                 "model_load": 0.7},
                {"training": 5.0, "wall": 6.0}]  # no examples recorded: not a measurement
    costs = planning.measure(profiles, between_trials_s=0.5)
    assert costs == Costs(train_per_example=0.01, eval_per_row=0.002, trial_overhead=2.5, test_overhead=0.7,
                          test_per_row=0.002 * planning.PIPELINE_FACTOR)
    assert planning.measure([{"training": 5.0, "wall": 6.0}]) is None
    # the final stages' scorer, once timed, replaces the stand-in for unseen rows and per scoring
    timed = planning.measure(profiles, between_trials_s=0.5, scoring=(0.004, 0.3))
    assert (timed.test_per_row, timed.test_overhead) == (0.004, 0.3)
    assert timed.eval_per_row == costs.eval_per_row and timed.train_per_example == costs.train_per_example


def test_eta_from_durations_and_running_steps() -> None:
    # two done (60 s mean), one running half-way after 40 s, two to start, two workers
    assert seconds_left([50.0, 70.0], to_start=2, running=[(40.0, 0.5)], workers=2) == pytest.approx((40 + 120) / 2)
    assert seconds_left([], to_start=1, running=[(10.0, None)]) is None
    assert seconds_left([30.0], to_start=0, running=[(40.0, None)]) == 0.0


def test_status_eta_follows_the_budget_plan_or_the_trials(tmp_path: Path) -> None:
    from hpo.inspect import eta_line
    from hpo.study.eta import study_ends_at

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s", direction="maximize")
    for d in (50.0, 70.0):
        t = study.ask()
        t.set_user_attr("duration_s", d)
        study.tell(t, 0.5)
    now = time.time()
    assert study_ends_at(study, 5, now) == pytest.approx(now + 3 * 60)  # 3 to go at the 60 s mean
    assert study_ends_at(study, 2, now) is None  # nothing running, nothing to start: no end to wait for
    running = study.ask()
    running.set_user_attr("steps", [10, 40])
    now = time.time()
    started = study.get_trials()[-1].datetime_start.timestamp()
    elapsed = now - started
    # the running trial: a quarter done, 3 x its elapsed time to go; 2 to start at 60 s
    assert study_ends_at(study, 5, now) == pytest.approx(now + 3 * elapsed + 120, abs=1e-3)
    assert "from the trials' durations" in eta_line(study, 5, now)
    study.set_user_attr(planning.ATTR, {"ends_at": now + 90, "budget_s": 300})
    assert study_ends_at(study, 5, now) == now + 90
    assert "in 1m30s; from the budget's plan" in eta_line(study, 5, now)


# -- the runner with a budget ----------------------------------------------------------------------------------


def _keeper(ctx: Any, *, left: float, said: list[str]) -> Any:
    from hpo.search.budgeting import BudgetKeeper

    budget = ctx.study.spec.search.budget
    return BudgetKeeper(ctx.study, started=time.time() - budget + left, say=said.append)


def _budgeted_context(make_study: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, budget: str) -> Any:
    """A search over the learning rate alone, with `budget` from HPO_BUDGET."""
    monkeypatch.setenv("HPO_BUDGET", budget)
    return search_context(make_study(search={"space": {"learning_rate": {"type": "float", "low": 1e-3,
                                                                           "high": 1e-2}}}))


def test_no_trial_starts_when_it_and_the_final_stages_would_pass_the_deadline(
        make_study: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo.search.runner import enqueue_initial, run_trials

    ctx = _budgeted_context(make_study, monkeypatch, "10m")
    said: list[str] = []
    keeper = _keeper(ctx, left=3.0, said=said)  # 3 s left: the first trial measures, nothing fits after it
    enqueue_initial(ctx)
    assert run_trials(ctx, budget=keeper) == 1
    trials = ctx.optuna_study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"]
    # 2 epochs on the default grid of 4 points per epoch: the budget's rung is 75 (see
    # test_budget_rungs_sit_on_the_evaluation_grid); the trial is evaluated there and at the end, nowhere else
    assert ctx.study.spec.search.evals_per_epoch == 4
    assert sorted(trials[0].intermediate_values) == [75, 200]
    assert {"examples", "eval_rows", "training", "evaluation"} <= set(trials[0].user_attrs["profile"])
    assert said[0].startswith("budget 10m: the run ends by") and "the first trial measures" in said[0]
    assert said[1].startswith("plan: about 1 trial, 1 trained to the end (successive halving")
    assert "no further trial fits" in said[2]
    assert ctx.optuna_study.user_attrs[planning.CLOSED] == 600
    per_row, per_scoring = keeper.scoring[ctx.optuna_study.study_name]  # the scorer timed on trial 0's model
    assert per_row > 0 and per_scoring >= 0
    record = ctx.optuna_study.user_attrs[planning.ATTR]
    assert record["trials"] == 1 and record["search_deadline"] < record["deadline"]

    # a rerun with the same budget does not search again; a larger one plans afresh
    again: list[str] = []
    assert run_trials(ctx, budget=_keeper(ctx, left=3.0, said=again)) == 0
    assert "ended within a budget of 10m in an earlier run" in again[0]


def test_the_final_stages_are_planned_at_the_speed_of_the_timed_scorer(
        make_study: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo.search.budgeting import SCORING_ROWS
    from hpo.search.runner import enqueue_initial, run_trials

    ctx = _budgeted_context(make_study, monkeypatch, "2h")  # time enough for every trial, however slow the machine
    timed: list[tuple[str, int]] = []

    def scorer(study: Any, folder: str, splits: Any, *, rows: int) -> tuple[float, float]:
        timed.append((folder, rows))
        return 0.5, 2.0  # half a second per unseen row, 2 s per scoring besides

    monkeypatch.setattr("hpo.final.time_scoring", scorer)
    said: list[str] = []
    keeper = _keeper(ctx, left=7200.0, said=said)
    enqueue_initial(ctx)
    assert run_trials(ctx, max_trials=3, budget=keeper) == 3
    first = ctx.optuna_study.get_trials()[0]
    assert timed == [(first.user_attrs["checkpoint"], min(SCORING_ROWS, len(ctx.splits.test)))]  # once
    top_k = ctx.study.spec.selection.top_k
    assert top_k >= 2 and keeper.plan.full >= top_k  # the gate scores top_k models, the final one among them
    assert keeper.plan.final_s == pytest.approx(top_k * (2.0 + 0.5 * len(ctx.splits.test)) + planning.REPORT_S)


def test_a_scorer_that_cannot_be_timed_leaves_the_evaluation_speed_standing_in(
        make_study: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo.search.runner import enqueue_initial, run_trials

    ctx = _budgeted_context(make_study, monkeypatch, "2h")  # time enough for every trial, however slow the machine
    calls: list[int] = []

    def broken(*args: Any, **kwargs: Any) -> tuple[float, float]:
        calls.append(1)
        raise RuntimeError("no pipeline for this model")

    monkeypatch.setattr("hpo.final.time_scoring", broken)
    said: list[str] = []
    keeper = _keeper(ctx, left=7200.0, said=said)
    enqueue_initial(ctx)
    assert run_trials(ctx, max_trials=2, budget=keeper) == 2  # the search goes on
    assert calls == [1]  # tried once
    assert any("timing the unseen-data scorer failed (RuntimeError: no pipeline for this model)" in s for s in said)
    costs = keeper._costs(ctx.optuna_study.get_trials())
    assert costs.test_per_row == costs.eval_per_row * planning.PIPELINE_FACTOR


def test_the_study_status_shows_the_plans_end_once_there_is_a_plan(
        make_study: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from hpo.live import LiveView, clock_time, opened
    from hpo.pipeline import _watched
    from hpo.search.runner import enqueue_initial, run_trials

    ctx = _budgeted_context(make_study, monkeypatch, "2h")
    keeper = _keeper(ctx, left=7200.0, said=[])
    out = io.StringIO()
    view = LiveView(Console(file=out, force_terminal=False, width=300), total=None, metric="accuracy", every=0)
    on_trial = _watched(view, lambda *args, **kwargs: None, keeper, ctx.study.spec.search.trial_cap)
    enqueue_initial(ctx)
    with opened(view):
        on_trial(ctx.optuna_study, None)
        assert run_trials(ctx, max_trials=2, budget=keeper, on_trial=on_trial) == 2
    lines = out.getvalue().splitlines()
    measuring = [ln for ln in lines if ln.startswith("status: trial 0:")]
    planned = [ln for ln in lines if ln.startswith("status: trial 1:")]
    assert measuring and not any("ends about" in ln for ln in measuring)  # no end to tell before a plan
    # from the first step of the first planned trial, the plan's end (not the trial cap's, hours away)
    assert planned and all(ln.endswith(f"ends about {clock_time(keeper.ends_at)}") for ln in planned), planned[:2]
    assert all("study 1/~" in ln for ln in planned)


def test_a_trial_running_past_the_search_deadline_is_cut(make_study: Callable[..., Path]) -> None:
    from hpo.live import watch_of
    from hpo.progress import trial_line
    from hpo.search.runner import run_trials

    ctx = search_context(make_study(search={"n_trials": 2, "baseline": False, "space": {
        "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}}}))
    run_trials(ctx, max_trials=1)
    watch = watch_of(ctx.trainer)
    watch.stop_at = time.time() - 1  # the search's time is up
    run_trials(ctx, max_trials=1)
    first, cut = ctx.optuna_study.get_trials()
    assert first.state.name == "COMPLETE"
    assert cut.state.name == "PRUNED" and cut.user_attrs["budget_cut"] is True
    assert cut.user_attrs["steps"][0] == 1  # stopped at its first step
    assert "cut by the budget" in trial_line(ctx.optuna_study, cut, 2, "accuracy")


@pytest.mark.slow
def test_hpo_run_with_a_budget_plans_and_reports_against_it(make_study: Callable[..., Path]) -> None:
    study_file = make_study(search={"evals_per_epoch": 4, "space": {
        "learning_rate": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
        "per_device_train_batch_size": {"type": "categorical", "choices": [16, 32]}},
        "sampler": {"name": "random", "seed": 0}})
    r = run_cli("run", str(study_file), "--budget", "45s", env={"HPO_BUDGET": ""})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "the first trial measures the speed" in r.stderr and "\nplan: about" in r.stderr
    results = json.loads((study_file.parent / "runs" / "tiny" / "results.json").read_text())
    assert results["search"]["budget_s"] == 45 and results["search"]["n_trials"] is None
    assert results["search"]["pruner"]["name"] == "successive_halving"
    assert results["budget"]["budget_s"] == 45 and results["budget"]["wall_s"] > 0
    assert "budget: search to report took" in r.stderr
    db = study_file.parent / "tiny.db"
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    assert study.user_attrs[planning.CLOSED] == 45  # the budget ended the search, not a trial count
    report = (study_file.parent / "runs" / "tiny" / "report.md").read_text()
    assert "planned within a budget of 45s" in report
    status = run_cli("status", str(study_file))
    assert status.returncode == 0 and "planned within a budget of 45s" in " ".join(status.stdout.split())
