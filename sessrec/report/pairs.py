"""Two parameters at a time: the heatmap of a grid (the seed study's three views of the word2vec
sampling parameters, gensim's default marked) and, for a random search, a scatter of its trials."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from sessrec.report.readings import (
    STATE_COLORS,
    Plot,
    at_epoch,
    fmt,
    metric_shown,
    position,
    rung_note,
    to_png,
)
from sessrec.sweep import trials as T
from sessrec.sweep.trials import TrialState as S

# The seed study's three views of the word2vec sampling parameters, and gensim's defaults for them.
HEATMAP_PAIRS = (("negative", "ns_exponent"), ("window", "ns_exponent"), ("window", "negative"))
GENSIM_DEFAULTS = {"window": 5, "negative": 5, "ns_exponent": 0.75}


def heatmap_table(
    trials: pd.DataFrame, row_param: str, col_param: str, metric: str, epoch: int | None = None
) -> pd.DataFrame:
    """Best final ``metric`` of the non-errored trials per (row, column) value, other parameters collapsed;
    with ``epoch``, each trial's ``metric`` at that epoch (its curve) instead of its final one.

    The best, not the mean: under ASHA a cell holds trials stopped after a few epochs next to
    ones that ran to the end, and a mean would rank cells by how many were stopped. Rows and
    columns are the sorted values of the two parameters seen in the sweep; a cell with no scored
    trial (none ran there, or all errored) is NaN and stays on the grid.
    """
    rows, cols = T.config_column(row_param), T.config_column(col_param)
    usable = trials[trials[T.STATE] != S.ERRORED]
    values = pd.to_numeric(usable[T.last_column(metric)], errors="coerce") if epoch is None else at_epoch(usable, epoch)
    table = values.groupby([usable[rows], usable[cols]]).max().unstack(cols)
    return table.reindex(index=sorted(trials[rows].dropna().unique()), columns=sorted(trials[cols].dropna().unique()))


def heatmap(
    table: pd.DataFrame,
    row: str,
    col: str,
    metric_name: str,
    best: pd.Series | None,
    collapsed: list[str],
    rung: int | None,
) -> Plot:
    """A :func:`heatmap_table` drawn as a heatmap, the best trial's cell and gensim's default
    marked, as ``heatmap_<row>_x_<col>.png``; ``collapsed`` names the parameters each cell is the
    best over, ``rung`` the epoch the values are taken at (None: final)."""
    shown = metric_shown(metric_name, rung)
    rows, cols = list(table.index), list(table.columns)
    cells = table.to_numpy(dtype=float)
    figure = Figure(figsize=(1.6 + 1.05 * len(cols), 1.6 + 0.75 * len(rows)))
    ax = figure.subplots()
    cmap = colormaps["viridis"].with_extremes(bad="#d9d9d9")
    norm = Normalize(np.nanmin(cells), np.nanmax(cells))
    image = ax.imshow(np.ma.masked_invalid(cells), cmap=cmap, norm=norm, origin="lower", aspect="auto")
    figure.colorbar(image, ax=ax, label=shown, fraction=0.06, pad=0.03)
    for i in range(len(rows)):
        for j in range(len(cols)):
            value = cells[i, j]
            if math.isnan(value):
                ax.text(j, i, "n/a", ha="center", va="center", color="#555555", fontsize=9)
                continue
            # Dark text on the light end of the colormap, white on the dark end.
            r, g, b, _ = cmap(norm(value))
            ax.text(
                j,
                i,
                f"{value:.3f}",
                ha="center",
                va="center",
                fontsize=9,
                color="black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white",
            )
    ax.set_xticks(range(len(cols)), [fmt(v) for v in cols])
    ax.set_yticks(range(len(rows)), [fmt(v) for v in rows])
    ax.set_xlabel(col)
    ax.set_ylabel(row)
    collapsed_text = f"best over {', '.join(collapsed)}" if collapsed else "best per cell"
    ax.set_title(f"{shown}: {row} × {col}\n({collapsed_text})", fontsize=11)

    handles = []
    spot_row = None if best is None else position(rows, best[T.config_column(row)])
    spot_col = None if best is None else position(cols, best[T.config_column(col)])
    if best is not None and spot_row is not None and spot_col is not None:
        ax.add_patch(Rectangle((spot_col - 0.5, spot_row - 0.5), 1, 1, fill=False, edgecolor="#e63946", linewidth=3.5))
        handles.append(Patch(fill=False, edgecolor="#e63946", linewidth=2.5, label=f"best trial {best[T.TRIAL_ID]}"))
    default_row, default_col = position(rows, GENSIM_DEFAULTS[row]), position(cols, GENSIM_DEFAULTS[col])
    default_text = f"gensim default ({row}={fmt(GENSIM_DEFAULTS[row])}, {col}={fmt(GENSIM_DEFAULTS[col])})"
    if default_row is None or default_col is None:
        # No cell to mark: say so in the legend, where the reader looks for the default.
        handles.append(Patch(visible=False, label=f"{default_text}: not among the values tried"))
    else:
        # Inset so that it stays visible when the best trial sits on the default cell; black dashes
        # over a white line read on both ends of the colormap.
        for color, style in (("white", "-"), ("black", (0, (3, 3)))):
            ax.add_patch(
                Rectangle(
                    (default_col - 0.36, default_row - 0.36),
                    0.72,
                    0.72,
                    fill=False,
                    edgecolor=color,
                    linewidth=2,
                    linestyle=style,
                )
            )
        handles.append(Patch(fill=False, edgecolor="black", linewidth=1.5, linestyle="--", label=default_text))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False, fontsize=8)
    marks = (
        f"{default_text} was not among the values tried"
        if default_row is None or default_col is None
        else "dashed box: gensim's default"
    )
    grey = " Grey cells: no scored trial (none ran there, or every one errored)." if np.isnan(cells).any() else ""
    caption = (
        f"{shown[0].upper()}{shown[1:]} of the non-errored trials, {collapsed_text}.{rung_note(rung)} "
        f"Red box: the best trial's cell; {marks}.{grey}"
    )
    return Plot(f"heatmap_{row}_x_{col}.png", f"{row} × {col}", caption, to_png(figure))


def pair_scatter(
    frame: pd.DataFrame,
    row: str,
    col: str,
    metric: str,
    metric_name: str,
    best: pd.Series | None,
    rung: int | None,
    logs: set[str],
) -> Plot:
    """A pair of parameters of a random search: one point per trial, coloured by its metric."""
    shown = metric_shown(metric_name, rung)
    usable = frame[frame[T.STATE] != S.ERRORED]
    values = at_epoch(usable, rung) if rung is not None else usable[T.last_column(metric)]
    scored = usable[values.notna()]
    values = values[values.notna()]
    figure = Figure(figsize=(7, 5.2), layout="constrained")
    ax = figure.subplots()
    points = ax.scatter(
        scored[T.config_column(col)],
        scored[T.config_column(row)],
        c=values,
        cmap="viridis",
        s=55,
        edgecolors="#333333",
        linewidths=0.5,
        zorder=3,
    )
    figure.colorbar(points, ax=ax, label=shown)
    errored = frame[frame[T.STATE] == S.ERRORED]
    if len(errored):
        ax.scatter(
            errored[T.config_column(col)],
            errored[T.config_column(row)],
            marker="x",
            color=STATE_COLORS[S.ERRORED],
            s=50,
            zorder=3,
            label=f"errored ({len(errored)})",
        )
    if best is not None:
        ax.scatter(
            [best[T.config_column(col)]],
            [best[T.config_column(row)]],
            s=260,
            marker="*",
            facecolors="none",
            edgecolors="#e63946",
            linewidths=2,
            zorder=4,
            label=f"best trial {best[T.TRIAL_ID]}",
        )
    for param, set_scale in ((col, ax.set_xscale), (row, ax.set_yscale)):
        if param in logs:
            set_scale("log")
    ax.set_xlabel(col + (" (log scale)" if col in logs else ""))
    ax.set_ylabel(row + (" (log scale)" if row in logs else ""))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    ax.set_title(f"{shown}: {row} × {col}, one point per trial", fontsize=11)
    caption = (
        f"{shown[0].upper()}{shown[1:]} of each non-errored trial at its {row} and {col}: a random search leaves "
        f"most cells of a heatmap empty, so each trial is a point.{rung_note(rung)} Star: the best trial."
    )
    return Plot(f"scatter_{row}_x_{col}.png", f"{row} × {col}", caption, to_png(figure))
