"""Study plots as PNG files through `optuna.visualization.matplotlib`; a plot that cannot be drawn is skipped
with the reason, never an error (the report matters more than one picture)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

MIN_TRIALS_FOR_IMPORTANCE = 2


def _save(ax: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = ax.figure if not hasattr(ax, "__len__") else ax.flat[0].figure
    fig.set_size_inches(8, 4.5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _labelled(ax: Any, *, x: str, y: str) -> Any:
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    return ax


def _integer_x(ax: Any) -> Any:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers, not 0.25 steps
    return ax


def _draw(make: Callable[[], Any], path: Path) -> str | None:
    """Draw and save; None on success, else why not."""
    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)
            _save(make(), path)
        return None
    except Exception as e:  # an optuna plot raises for degenerate studies (one value, no variance)
        return f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"


def write_plots(studies: dict[str, Any], folder: Path, *, metric: str,
                points: list[list[float]] | None = None) -> tuple[list[tuple[str, str]], list[str]]:
    """Plots for `{label: optuna.Study}` into `folder`, and predicted against true values on the test split when
    `points` ([true, predicted] pairs, regression) are given. Returns ([(file name, caption)], [skip notes])."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as vis

    folder.mkdir(parents=True, exist_ok=True)
    images: list[tuple[str, str]] = []
    skipped: list[str] = []
    several = len(studies) > 1

    def add(name: str, caption: str, make: Callable[[], Any]) -> None:
        why = _draw(make, folder / name)
        if why is None:
            images.append((name, caption))
        else:
            skipped.append(f"{caption}: not drawn ({why})")

    all_studies = list(studies.values())
    multi = any(len(s.directions) > 1 for s in all_studies)
    target = (lambda t: t.values[0]) if multi else None  # multi-objective: plot the metric (first objective)
    add("optimization_history.png", f"Optimization history: validation {metric} per trial and best so far",
        lambda: _integer_x(vis.plot_optimization_history(all_studies if several else all_studies[0],
                                                         target=target, target_name=metric)))
    for label, study in studies.items():
        suffix = f"-{_slug(label)}" if several else ""
        of = f" ({label})" if several else ""
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        params = {k for t in complete for k in t.params}
        if len(complete) < MIN_TRIALS_FOR_IMPORTANCE or not params:
            skipped.append(f"Parameter importances{of}: not drawn (needs at least {MIN_TRIALS_FOR_IMPORTANCE} "
                           f"complete trials and one searched parameter; has {len(complete)} and {len(params)})")
        else:
            add(f"param_importances{suffix}.png", f"Parameter importances for validation {metric}{of}",
                lambda s=study: vis.plot_param_importances(s, target=target, target_name=metric))
        if len(study.directions) > 1:
            add(f"pareto_front{suffix}.png", f"Pareto front{of}",
                lambda s=study: vis.plot_pareto_front(s, target_names=s.metric_names))
        if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            skipped.append(f"Intermediate values{of}: not drawn (no trial reported intermediate values)")
        else:
            add(f"intermediate_values{suffix}.png",
                f"Intermediate validation {metric} during training (pruning points){of}",
                lambda s=study: _labelled(vis.plot_intermediate_values(s), x="percent of an epoch",
                                          y=f"validation {metric}"))
    if points:
        add("predicted_vs_true.png", "Predicted against true values on the unseen test split (diagonal: exact)",
            lambda: _scatter(points))
    return images, skipped


def _scatter(points: list[list[float]]) -> Any:
    import matplotlib.pyplot as plt

    gold, predicted = zip(*points)
    _, ax = plt.subplots()
    ax.scatter(gold, predicted, s=8, alpha=0.5)
    low, high = min(*gold, *predicted), max(*gold, *predicted)
    ax.plot([low, high], [low, high], color="grey", linewidth=1)
    return _labelled(ax, x="true value", y="predicted value")


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label.rstrip("/").split("/")[-1])
