"""Every varying parameter at once: the final metric against each parameter, and parallel
coordinates (one line per trial through its value of each parameter)."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sessrec.report.readings import (
    STATE_COLORS,
    STATE_LABELS,
    Plot,
    fmt,
    is_categorical,
    position,
    to_png,
)
from sessrec.sweep import trials as T
from sessrec.sweep.trials import TrialState as S


def by_parameter(
    frame: pd.DataFrame, varying: list[str], metric: str, metric_name: str, best: pd.Series, logs: set[str]
) -> Plot:
    """The final ``metric`` of every non-errored trial against each ``varying`` parameter, one panel
    each (with the best per value for a grid or choice; log axes for ``logs``), as
    ``metric_by_parameter.png``."""
    usable = frame[(frame[T.STATE] != S.ERRORED) & frame[T.last_column(metric)].notna()]
    # Trials stopped early are drawn apart (hollow) and left out of the best-per-value line: their
    # final value is from an earlier epoch than the others'.
    full = usable[usable[T.STATE] == S.COMPLETED]
    line_from = full if len(full) else usable
    columns = min(len(varying), 3)
    lines = math.ceil(len(varying) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.4 * lines), layout="constrained")
    axes = figure.subplots(lines, columns, squeeze=False).ravel()
    y = usable[T.last_column(metric)]
    for ax, param in zip(axes, varying, strict=False):
        values = sorted(frame[T.config_column(param)].dropna().unique())
        categorical = is_categorical(frame, param)

        def place(
            part: pd.DataFrame, param: str = param, values: list[Any] = values, grid: bool = categorical
        ) -> pd.Series:
            return placed(part, param, values, grid)

        for state, part in usable.groupby(T.STATE):
            done = state == S.COMPLETED
            ax.scatter(
                place(part),
                part[T.last_column(metric)],
                s=16,
                zorder=3,
                alpha=0.8,
                facecolors="#1d3557" if done else "none",
                edgecolors="#1d3557" if done else STATE_COLORS[state],
                label="trial, all epochs" if done else f"trial {STATE_LABELS[state]} (its last epoch)",
            )
        if categorical:
            # A grid or choice: evenly spaced values, the best per value as a line through the trials
            # (the best, as in the heatmaps; a line, not bars: the y axis is zoomed in).
            bests = line_from[T.last_column(metric)].groupby(place(line_from)).max().reindex(range(len(values)))
            line_label = "best per value" + (", all epochs" if len(full) and len(full) < len(usable) else "")
            ax.plot(range(len(values)), bests.to_numpy(), color="#2a9d8f", marker="D", linewidth=2, label=line_label)
            ax.set_xticks(range(len(values)), [fmt(v) for v in values])
            best_x = position(values, best[T.config_column(param)])
        else:
            if param in logs:
                ax.set_xscale("log")
            best_x = best[T.config_column(param)]
        ax.scatter(
            [best_x], [best[T.last_column(metric)]], s=90, marker="*", color="#e63946", zorder=4, label="best trial"
        )
        low, high = y.min(), y.max()
        pad = max((high - low) * 0.15, 0.01)
        ax.set_ylim(max(low - pad, 0), high + pad)
        ax.set_xlabel(param + (" (log scale)" if param in logs and not categorical else ""))
        ax.set_ylabel(f"final {metric_name}")
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(varying) :]:
        ax.set_visible(False)
    # One legend for all panels: each panel has only some of the entries (no line on a scatter).
    entries = dict(pair for ax in axes for pair in zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    figure.legend(
        entries.values(),
        entries.keys(),
        loc="outside lower center",
        ncol=min(len(entries), 4),
        frameon=False,
        fontsize=8,
    )
    figure.suptitle(f"final {metric_name} by parameter", fontsize=11)
    caption = (
        f"Final {metric_name} of every non-errored trial against each varying parameter. Filled: trials that ran "
        "all their epochs; hollow: trials ASHA stopped early, at the epoch they stopped (not comparable with "
        "the filled ones, and left out of the best-per-value line of a grid or choice). Log axes for "
        "parameters sampled on a log scale."
    )
    return Plot("metric_by_parameter.png", "Metric by parameter", caption, to_png(figure))


def placed(part: pd.DataFrame, param: str, values: list[Any], categorical: bool) -> pd.Series:
    """A parameter's x position per trial: its index among ``values`` for a grid or choice, else its value."""
    column = part[T.config_column(param)]
    return column.map(lambda value: position(values, value)) if categorical else column


def parallel(frame: pd.DataFrame, varying: list[str], metric: str, metric_name: str, logs: set[str]) -> Plot:
    """Parallel coordinates: one line per trial through its value of every varying parameter."""
    figure = Figure(figsize=(max(6.5, 1.9 * len(varying) + 2.5), 4.8), layout="constrained")
    ax = figure.subplots()
    positions: dict[str, pd.Series] = {}
    for param in varying:
        column = frame[T.config_column(param)]
        values = sorted(column.dropna().unique())
        if is_categorical(frame, param) or not all(isinstance(v, Real) for v in values):
            spread = max(len(values) - 1, 1)
            positions[param] = column.map(lambda v, values=values, spread=spread: (position(values, v) or 0) / spread)
            ticks = [(i / spread, fmt(v)) for i, v in enumerate(values)]
        else:
            scale = np.log10 if param in logs else (lambda a: a)
            low, high = float(scale(min(values))), float(scale(max(values)))
            width = (high - low) or 1.0
            positions[param] = column.map(lambda v, scale=scale, low=low, width=width: (float(scale(v)) - low) / width)
            ticks = [(0.0, fmt(min(values))), (1.0, fmt(max(values)))]
        x = varying.index(param)
        ax.axvline(x, color="#444444", linewidth=1)
        for y, text in ticks:
            ax.text(
                x + 0.03,
                y,
                text,
                fontsize=7.5,
                va="center",
                ha="left",
                color="#222222",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5},
            )
    scores = frame[T.last_column(metric)]
    scored = frame[(frame[T.STATE] != S.ERRORED) & scores.notna()]
    norm = Normalize(scored[T.last_column(metric)].min(), scored[T.last_column(metric)].max())
    cmap = colormaps["viridis"]
    # Worst first, so that the best lines are drawn on top.
    for _, trial in frame.assign(_score=scores.fillna(-np.inf)).sort_values("_score").iterrows():
        ys = [positions[p][trial.name] for p in varying]
        if trial[T.STATE] == S.ERRORED or pd.isna(trial[T.last_column(metric)]):
            ax.plot(range(len(varying)), ys, color=STATE_COLORS[S.ERRORED], linestyle=":", linewidth=1.2, alpha=0.9)
        elif trial[T.STATE] == S.COMPLETED:
            ax.plot(range(len(varying)), ys, color=cmap(norm(trial[T.last_column(metric)])), linewidth=1.8, alpha=0.9)
        else:
            ax.plot(
                range(len(varying)),
                ys,
                color=cmap(norm(trial[T.last_column(metric)])),
                linestyle="--",
                linewidth=1,
                alpha=0.55,
            )
    figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=f"final {metric_name}")
    ax.set_xticks(range(len(varying)), [p + (" (log)" if p in logs else "") for p in varying])
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(varying) - 0.6)
    ax.set_ylim(-0.06, 1.06)
    for side in ("left", "right", "top", "bottom"):
        ax.spines[side].set_visible(False)
    handles = [
        Line2D([], [], color="#555555", linewidth=1.8, label="ran all its epochs"),
        Line2D([], [], color="#555555", linestyle="--", linewidth=1, label="stopped early (final = its last epoch)"),
        Line2D([], [], color=STATE_COLORS[S.ERRORED], linestyle=":", label="errored"),
    ]
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    ax.set_title(f"all {len(frame)} trials: parameters and final {metric_name}", fontsize=11)
    caption = (
        f"Every trial as one line through its value of each varying parameter, coloured by its final {metric_name} "
        "(solid: ran all its epochs; dashed, faint: stopped early by ASHA, so its colour is from an earlier epoch; "
        "red dotted: errored). Each axis runs from the lowest value tried to the highest, on a log scale where "
        "marked."
    )
    return Plot("parallel_coordinates.png", "Parallel coordinates", caption, to_png(figure))
