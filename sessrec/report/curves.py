"""How trials ran, epoch by epoch: the learning curves of the best trials and the epochs each
trial ran before it completed, was stopped early by ASHA, or errored."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sessrec.report.readings import (
    STATE_COLORS,
    STATE_LABELS,
    Plot,
    fmt,
    ranked_trials,
    states_shown,
    to_png,
)
from sessrec.sweep import trials as T
from sessrec.sweep.trials import TrialState as S


def learning_curves(
    frame: pd.DataFrame, varying: list[str], metric: str, metric_name: str, best: pd.Series, top: int
) -> Plot:
    """The validation ``metric`` after each epoch of the ``top`` best trials that have a curve, each
    labelled with its ``varying`` parameters and ``best`` drawn bold, as ``curves.png``."""
    ranked = ranked_trials(frame, metric)
    ranked = ranked[ranked[T.CURVE].map(len) > 0].head(top)
    figure = Figure(figsize=(9.5, 4.6))
    ax = figure.subplots()
    colors = colormaps["tab10"]
    for n, (_, trial) in enumerate(ranked.iterrows()):
        is_best = trial[T.TRIAL_ID] == best[T.TRIAL_ID]
        curve = trial[T.CURVE]
        params = ", ".join(f"{p}={fmt(trial[T.config_column(p)])}" for p in varying)
        label = f"{trial[T.TRIAL_ID]}" + (f" ({params})" if params else "") + (" ★ best" if is_best else "")
        ax.plot(
            range(1, len(curve) + 1),
            curve,
            marker="o",
            markersize=3,
            color=colors(n % 10),
            linewidth=3 if is_best else 1.4,
            linestyle="-" if trial[T.STATE] == S.COMPLETED else "--",
            label=label,
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric_name}")
    ax.grid(alpha=0.3)
    ax.set_title(f"validation {metric_name} per epoch, top {len(ranked)} trials by final value", fontsize=11)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    dashed = (
        "stopped early by ASHA, or unfinished" if (ranked[T.STATE] == S.UNFINISHED).any() else "stopped early by ASHA"
    )
    caption = f"Validation {metric_name} after each epoch for the {len(ranked)} best trials (dashed: {dashed})."
    return Plot("curves.png", "Learning curves", caption, to_png(figure))


def epochs_run(frame: pd.DataFrame) -> Plot:
    """How many trials ran each number of epochs, stacked by state, as ``epochs_run.png``."""
    epochs = range(int(frame[T.EPOCHS_RUN].min()), int(frame[T.EPOCHS_RUN].max()) + 1)
    states = states_shown(frame)
    counts = pd.crosstab(frame[T.EPOCHS_RUN], frame[T.STATE]).reindex(index=epochs, columns=states, fill_value=0)
    figure = Figure(figsize=(7, 3.8))
    ax = figure.subplots()
    bottom = np.zeros(len(epochs))
    for state in states:
        heights = counts[state].to_numpy()
        ax.bar(
            list(epochs),
            heights,
            bottom=bottom,
            color=STATE_COLORS[state],
            width=0.8,
            label=f"{STATE_LABELS[state]} ({int(heights.sum())})",
        )
        bottom += heights
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epochs run")
    ax.set_ylabel("trials")
    ax.set_ylim(0, bottom.max() * 1.08)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, ncol=len(states), loc="upper center", bbox_to_anchor=(0.5, -0.16))
    ax.set_title("epochs run per trial (ASHA early stopping)", fontsize=11)
    caption = "How many epochs each trial ran before it completed, was stopped early by ASHA, or errored."
    if S.UNFINISHED in states:
        caption += (
            " Unfinished: the sweep has not finished, and the trial's newest checkpoint has fewer epochs"
            " than its config."
        )
    return Plot("epochs_run.png", "Early stopping", caption, to_png(figure))
