"""The sweep report: the trials table, the manifest and the best trial's metrics in; PNG plots and
one self-contained ``index.html`` out, as bytes. No storage I/O here: the caller writes the files.

Plots are drawn on ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot, so
building a report changes no global matplotlib state (backend, open figures) of the caller.

Why over 400 lines: each plot (heatmap, pair scatter, metric by parameter, parallel coordinates,
curves, early stopping) and the HTML page are one reading of the same trials table, sharing its
helpers (equal-epoch values, axis positions, formats); split apart they would pass those around.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Collection
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from sessrec.core.metrics import metric_label
from sessrec.errors import SessrecError
from sessrec.sweep import trials as T
from sessrec.sweep.trials import TrialState as S

# UNFINISHED: a trial of a sweep that has not finished, read from its newest checkpoint (cut
# short, or stopped by ASHA: a checkpoint does not tell which). Shown only where there is one.
STATE_COLORS: dict[str, str] = {
    S.COMPLETED: "#2a9d8f",
    S.STOPPED_EARLY: "#f4a261",
    S.ERRORED: "#d62828",
    S.UNFINISHED: "#8d99ae",
}
STATE_LABELS: dict[str, str] = {
    S.COMPLETED: "completed",
    S.STOPPED_EARLY: "stopped early",
    S.ERRORED: "errored",
    S.UNFINISHED: "unfinished",
}
REQUIRED_COLUMNS = (T.TRIAL_ID, T.STATE, T.EPOCHS_RUN, T.CURVE, T.ERROR)

# The seed study's three views of the word2vec sampling parameters, and gensim's defaults for them.
HEATMAP_PAIRS = (("negative", "ns_exponent"), ("window", "ns_exponent"), ("window", "negative"))
GENSIM_DEFAULTS = {"window": 5, "negative": 5, "ns_exponent": 0.75}
# Beyond this many distinct values an axis is a continuous (random) search: a heatmap would be a
# sparse checkerboard, so that parameter is shown in the per-parameter plot instead.
MAX_AXIS_VALUES = 12
TOP_TRIALS = 20
INDEX = "index.html"


@dataclass(frozen=True)
class _Plot:
    name: str
    title: str
    caption: str
    png: bytes


def build_report(
    trials: pd.DataFrame,
    manifest: dict[str, Any],
    best_metrics: dict[str, Any] | None,
    *,
    top_curves: int = 10,
    log_params: Collection[str] = (),
) -> dict[str, bytes]:
    """File name → content: one PNG per plot and an ``index.html`` that embeds them all.

    ``log_params``: parameters the spec samples on a log scale (loguniform): drawn on log axes."""
    metric = _check(trials, manifest)
    label = metric_label(metric, manifest.get("k"))
    frame = _normalise(trials, metric)
    config = [c.removeprefix(T.CONFIG_PREFIX) for c in T.config_columns(frame.columns)]
    varying = [p for p in config if frame[T.config_column(p)].nunique(dropna=True) > 1]
    best = _best_trial(frame, manifest, metric)
    logs = {p for p in varying if p in log_params or _spans_decades(frame, p)}
    # Trials ASHA stopped at a rung are compared with the others at the same epoch: the rung that
    # every scored trial reached (the final epoch when all ran as long).
    rung = _common_epoch(frame)

    plots: list[_Plot] = []
    notes: list[str] = []
    covered: set[str] = set()
    for row, col in HEATMAP_PAIRS:
        if row not in varying or col not in varying:
            continue
        table = heatmap_table(frame, row, col, metric, epoch=rung)
        if table.isna().all().all():
            notes.append(f"No {row} × {col} heatmap: no trial finished without error.")
            continue
        sparse = any(not _categorical(frame, p) for p in (row, col)) or table.isna().to_numpy().mean() > 0.5
        others = [p for p in varying if p not in (row, col)]
        if sparse:
            # A random search: a heatmap of its ranges would be mostly empty cells.
            plots.append(_pair_scatter(frame, row, col, metric, label, best, rung, logs))
        else:
            plots.append(_heatmap(table, row, col, label, best, others, rung))
        covered.update((row, col))
    # With no scored trial (all errored) only the early-stopping picture has anything to show.
    if best is not None and varying and (len(varying) <= 2 or not set(varying) <= covered):
        plots.append(_by_parameter(frame, varying, metric, label, best, logs))
    if best is not None and len(varying) >= 2:
        plots.append(_parallel(frame, varying, metric, label, logs))
    if best is not None and len(best[T.CURVE]):
        plots.append(_curves(frame, varying, metric, label, best, top_curves))
    plots.append(_epochs_run(frame))

    files = {plot.name: plot.png for plot in plots}
    files[INDEX] = _html(frame, manifest, best_metrics, metric, config, varying, best, plots, notes).encode("utf-8")
    return files


def log_scale_params(spec_text: str) -> set[str]:
    """The parameters a sweep's spec (its stored YAML) samples on a log scale (loguniform); none
    where the spec cannot be read: the report then goes by the values alone."""
    from sessrec.spec import parse_spec

    try:
        spec = parse_spec(spec_text)
    except SessrecError:
        return set()
    return {name for name, domain in spec.space.items() if domain.kind == "loguniform"}


def _categorical(frame: pd.DataFrame, param: str) -> bool:
    """A grid or choice: few values, shared by several trials. A range sampled at random gives
    every trial a value of its own, which reads as a number line, not as categories."""
    column = frame[T.config_column(param)].dropna()
    distinct = column.nunique()
    return distinct <= MAX_AXIS_VALUES and distinct < len(column)


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
    values = (
        pd.to_numeric(usable[T.last_column(metric)], errors="coerce") if epoch is None else _at_epoch(usable, epoch)
    )
    table = values.groupby([usable[rows], usable[cols]]).max().unstack(cols)
    return table.reindex(index=sorted(trials[rows].dropna().unique()), columns=sorted(trials[cols].dropna().unique()))


# ---------------------------------------------------------------------------------------------
# Input


def _check(trials: pd.DataFrame, manifest: dict[str, Any]) -> str:
    metric = manifest.get("metric")
    if not metric:
        raise SessrecError("cannot build the report: the sweep manifest names no metric")
    if trials.empty:
        raise SessrecError(
            f"cannot build the report for sweep {manifest.get('sweep_id', '?')}: no trial has results yet "
            f"(status: {manifest.get('status', '?')})"
        )
    missing = [c for c in (*REQUIRED_COLUMNS, T.last_column(metric)) if c not in trials.columns]
    if missing:
        raise SessrecError(f"cannot build the report: the trials table has no column {', '.join(missing)}")
    unknown = sorted(set(trials[T.STATE]) - set(T.TABLE_STATES))
    if unknown:
        raise SessrecError(f"cannot build the report: unknown trial state {', '.join(map(str, unknown))}")
    return metric


def _normalise(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    frame = trials.reset_index(drop=True).copy()
    # Parquet gives curves as numpy arrays, callers may give lists, an errored trial may have None.
    frame[T.CURVE] = frame[T.CURVE].map(
        lambda c: [float(v) for v in c] if isinstance(c, (list, tuple, np.ndarray)) else []
    )
    for column in {T.last_column(metric), T.LAST_RECALL, T.LAST_MRR} & set(frame.columns):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def _best_trial(frame: pd.DataFrame, manifest: dict[str, Any], metric: str) -> pd.Series | None:
    """The manifest's best trial (the one whose embeddings were kept), else the best final metric."""
    chosen = (manifest.get("best") or {}).get("trial_id")
    match = frame[frame[T.TRIAL_ID] == chosen]
    if len(match):
        return match.iloc[0]
    ranked = _ranked(frame, metric)
    return None if ranked.empty else ranked.iloc[0]


# ---------------------------------------------------------------------------------------------
# Plots


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _fmt(value: Any) -> str:
    """Compact display of a config value or metric: ints as ints, floats with up to 4 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and float(value).is_integer()):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def _spans_decades(frame: pd.DataFrame, param: str) -> bool:
    """A numeric range over two orders of magnitude or more: drawn on a log axis even where the
    spec is not at hand to say it was sampled on a log scale."""
    values = pd.to_numeric(frame[T.config_column(param)], errors="coerce").dropna()
    return (
        not _categorical(frame, param) and len(values) > 0 and values.min() > 0 and values.max() / values.min() >= 100
    )


def _common_epoch(frame: pd.DataFrame) -> int | None:
    """The last epoch every scored trial reached (under ASHA, its first rung), where trials ran
    for different numbers of epochs; None where they all ran as long (then finals compare)."""
    scored = frame[frame[T.STATE] != S.ERRORED][T.CURVE].map(len)
    scored = scored[scored > 0]
    if scored.empty or scored.min() == scored.max():
        return None
    return int(scored.min())


def _at_epoch(trials: pd.DataFrame, epoch: int) -> pd.Series:
    """Each trial's metric after ``epoch`` (its curve), NaN for a trial that did not reach it."""
    return trials[T.CURVE].map(lambda c: float(c[epoch - 1]) if len(c) >= epoch else math.nan).astype(float)


def _shown(metric_name: str, rung: int | None) -> str:
    return f"final {metric_name}" if rung is None else f"{metric_name} at epoch {rung}"


def _rung_note(rung: int | None) -> str:
    if rung is None:
        return ""
    return (
        f" Every trial is taken at epoch {rung}, the first ASHA rung, which every non-errored trial reached: "
        "trials stopped there are compared with the others at equal epochs, not with their later finals."
    )


def _position(values: list[Any], value: Any) -> int | None:
    # Float grid values come back from Parquet exactly, but compare with a tolerance anyway.
    for i, v in enumerate(values):
        if v == value or (isinstance(v, Real) and isinstance(value, Real) and math.isclose(v, value)):
            return i
    return None


def _heatmap(
    table: pd.DataFrame,
    row: str,
    col: str,
    metric_name: str,
    best: pd.Series | None,
    collapsed: list[str],
    rung: int | None,
) -> _Plot:
    shown = _shown(metric_name, rung)
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
    ax.set_xticks(range(len(cols)), [_fmt(v) for v in cols])
    ax.set_yticks(range(len(rows)), [_fmt(v) for v in rows])
    ax.set_xlabel(col)
    ax.set_ylabel(row)
    collapsed_text = f"best over {', '.join(collapsed)}" if collapsed else "best per cell"
    ax.set_title(f"{shown}: {row} × {col}\n({collapsed_text})", fontsize=11)

    handles = []
    spot_row = None if best is None else _position(rows, best[T.config_column(row)])
    spot_col = None if best is None else _position(cols, best[T.config_column(col)])
    if best is not None and spot_row is not None and spot_col is not None:
        ax.add_patch(Rectangle((spot_col - 0.5, spot_row - 0.5), 1, 1, fill=False, edgecolor="#e63946", linewidth=3.5))
        handles.append(Patch(fill=False, edgecolor="#e63946", linewidth=2.5, label=f"best trial {best[T.TRIAL_ID]}"))
    default_row, default_col = _position(rows, GENSIM_DEFAULTS[row]), _position(cols, GENSIM_DEFAULTS[col])
    default_text = f"gensim default ({row}={_fmt(GENSIM_DEFAULTS[row])}, {col}={_fmt(GENSIM_DEFAULTS[col])})"
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
        f"{shown[0].upper()}{shown[1:]} of the non-errored trials, {collapsed_text}.{_rung_note(rung)} "
        f"Red box: the best trial's cell; {marks}.{grey}"
    )
    return _Plot(f"heatmap_{row}_x_{col}.png", f"{row} × {col}", caption, _png(figure))


def _by_parameter(
    frame: pd.DataFrame, varying: list[str], metric: str, metric_name: str, best: pd.Series, logs: set[str]
) -> _Plot:
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
        categorical = _categorical(frame, param)

        def place(
            part: pd.DataFrame, param: str = param, values: list[Any] = values, grid: bool = categorical
        ) -> pd.Series:
            return _placed(part, param, values, grid)

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
            ax.set_xticks(range(len(values)), [_fmt(v) for v in values])
            best_x = _position(values, best[T.config_column(param)])
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
    return _Plot("metric_by_parameter.png", "Metric by parameter", caption, _png(figure))


def _placed(part: pd.DataFrame, param: str, values: list[Any], categorical: bool) -> pd.Series:
    """A parameter's x position per trial: its index among ``values`` for a grid or choice, else its value."""
    column = part[T.config_column(param)]
    return column.map(lambda value: _position(values, value)) if categorical else column


def _pair_scatter(
    frame: pd.DataFrame,
    row: str,
    col: str,
    metric: str,
    metric_name: str,
    best: pd.Series | None,
    rung: int | None,
    logs: set[str],
) -> _Plot:
    """A pair of parameters of a random search: one point per trial, coloured by its metric."""
    shown = _shown(metric_name, rung)
    usable = frame[frame[T.STATE] != S.ERRORED]
    values = _at_epoch(usable, rung) if rung is not None else usable[T.last_column(metric)]
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
        f"most cells of a heatmap empty, so each trial is a point.{_rung_note(rung)} Star: the best trial."
    )
    return _Plot(f"scatter_{row}_x_{col}.png", f"{row} × {col}", caption, _png(figure))


def _parallel(frame: pd.DataFrame, varying: list[str], metric: str, metric_name: str, logs: set[str]) -> _Plot:
    """Parallel coordinates: one line per trial through its value of every varying parameter."""
    figure = Figure(figsize=(max(6.5, 1.9 * len(varying) + 2.5), 4.8), layout="constrained")
    ax = figure.subplots()
    positions: dict[str, pd.Series] = {}
    for param in varying:
        column = frame[T.config_column(param)]
        values = sorted(column.dropna().unique())
        if _categorical(frame, param) or not all(isinstance(v, Real) for v in values):
            spread = max(len(values) - 1, 1)
            positions[param] = column.map(lambda v, values=values, spread=spread: (_position(values, v) or 0) / spread)
            ticks = [(i / spread, _fmt(v)) for i, v in enumerate(values)]
        else:
            scale = np.log10 if param in logs else (lambda a: a)
            low, high = float(scale(min(values))), float(scale(max(values)))
            width = (high - low) or 1.0
            positions[param] = column.map(lambda v, scale=scale, low=low, width=width: (float(scale(v)) - low) / width)
            ticks = [(0.0, _fmt(min(values))), (1.0, _fmt(max(values)))]
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
    return _Plot("parallel_coordinates.png", "Parallel coordinates", caption, _png(figure))


def _curves(frame: pd.DataFrame, varying: list[str], metric: str, metric_name: str, best: pd.Series, top: int) -> _Plot:
    ranked = _ranked(frame, metric)
    ranked = ranked[ranked[T.CURVE].map(len) > 0].head(top)
    figure = Figure(figsize=(9.5, 4.6))
    ax = figure.subplots()
    colors = colormaps["tab10"]
    for n, (_, trial) in enumerate(ranked.iterrows()):
        is_best = trial[T.TRIAL_ID] == best[T.TRIAL_ID]
        curve = trial[T.CURVE]
        params = ", ".join(f"{p}={_fmt(trial[T.config_column(p)])}" for p in varying)
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
    return _Plot("curves.png", "Learning curves", caption, _png(figure))


def _epochs_run(frame: pd.DataFrame) -> _Plot:
    epochs = range(int(frame[T.EPOCHS_RUN].min()), int(frame[T.EPOCHS_RUN].max()) + 1)
    states = _states_shown(frame)
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
    return _Plot("epochs_run.png", "Early stopping", caption, _png(figure))


def _states_shown(frame: pd.DataFrame) -> list[str]:
    return [s for s in T.TABLE_STATES if s != S.UNFINISHED or (frame[T.STATE] == s).any()]


def _ranked(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    usable = frame[(frame[T.STATE] != S.ERRORED) & frame[T.last_column(metric)].notna()]
    return usable.sort_values([T.last_column(metric), T.TRIAL_ID], ascending=[False, True], kind="stable")


# ---------------------------------------------------------------------------------------------
# HTML

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1d1d1f; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.55rem; text-align: left; vertical-align: top; }
th { background: #f4f4f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.summary th { width: 13rem; } tr.best td { background: #fff3cd; }
figure { margin: 1rem 0 1.5rem; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #555; } .note { color: #666; font-size: 0.85rem; }
code { font-size: 0.85rem; } td.error { font-family: ui-monospace, monospace; white-space: pre-wrap; max-width: 40rem; }
"""


def _e(value: Any) -> str:
    return html.escape(_fmt(value))


def _score(value: Any) -> str:
    # Metrics with a fixed number of decimals, so that a table column lines up.
    return "–" if value is None or pd.isna(value) else f"{float(value):.4f}"


def _metric_pair(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "–"
    k = metrics.get("k")
    return " · ".join(
        f"{_e(metric_label(metric, k))} {_score(metrics.get(metric))}" for metric in ("recall_at_k", "mrr_at_k")
    )


def _params(trial: pd.Series, names: list[str]) -> str:
    return ", ".join(f"{name}={_fmt(trial[T.config_column(name)])}" for name in names) or "–"


def _html(
    frame: pd.DataFrame,
    manifest: dict[str, Any],
    best_metrics: dict[str, Any] | None,
    metric: str,
    config: list[str],
    varying: list[str],
    best: pd.Series | None,
    plots: list[_Plot],
    notes: list[str],
) -> str:
    sweep_id = str(manifest.get("sweep_id", "?"))
    dataset, split = manifest.get("dataset") or {}, manifest.get("split") or {}
    counts = frame[T.STATE].value_counts()
    fixed = [p for p in config if p not in varying]
    versions = ", ".join(f"{name} {value}" for name, value in (manifest.get("versions") or {}).items())
    test = (best_metrics or {}).get("test")
    summary = [
        (
            "Status",
            manifest.get("status", "?")
            if manifest.get("trials")  # a finished run's summary
            else f"{manifest.get('status', '?')}: not finished, trials as their newest checkpoints left them",
        ),
        (
            "Trials",
            f"{len(frame)} of {_fmt(manifest.get('planned_trials'))} planned: "
            + ", ".join(f"{int(counts.get(s, 0))} {STATE_LABELS[s]}" for s in _states_shown(frame)),
        ),
        ("Dataset", f"{dataset.get('ref', '?')} (sha256 {str(dataset.get('sha256', '?'))[:12]})"),
        ("Split", f"seed {_fmt(split.get('seed'))}, N {_fmt(split.get('n'))}"),
        ("K", _fmt(manifest.get("k"))),
        ("Metric", metric),
        (
            "Best trial",
            "–"
            if best is None
            else f"{best[T.TRIAL_ID]} ({STATE_LABELS[best[T.STATE]]}, {_fmt(best[T.EPOCHS_RUN])} epochs)",
        ),
        ("Best config", "–" if best is None else _params(best, varying)),
        ("Fixed parameters", "–" if best is None else _params(best, fixed)),
        ("Started / finished", f"{manifest.get('started', '–')} / {manifest.get('finished', '–')}"),
        ("Versions", versions or "–"),
    ]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in summary)
    # Pre-escaped HTML (the metric pairs) is added after the plain rows.
    rows += f"<tr><th>Best validation</th><td>{_metric_pair((best_metrics or {}).get('validation'))}</td></tr>"
    pairs = f" on {_e(test.get('pairs'))} pairs" if test and test.get("pairs") is not None else ""
    rows += f"<tr><th>Best test</th><td>{_metric_pair(test)}{pairs}</td></tr>"

    figures = "".join(
        f'<figure><img alt="{html.escape(p.title)}" '
        f'src="data:image/png;base64,{base64.b64encode(p.png).decode("ascii")}">'
        f"<figcaption>{html.escape(p.caption)}</figcaption></figure>"
        for p in plots
    )
    figures += "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)

    # Column → (header, formatter); the optional columns of the trials table only when present.
    k = manifest.get("k")
    label = metric_label(metric, k)
    columns = {
        T.last_column(metric): (f"final {label}", _score),
        T.LAST_RECALL: (f"final {metric_label('recall_at_k', k)}", _score),
        T.LAST_MRR: (f"final {metric_label('mrr_at_k', k)}", _score),
        f"best_{metric}": (f"best {label}", _score),
        T.BEST_EPOCH: ("at epoch", _e),
        T.EPOCHS_RUN: ("epochs run", _e),
        T.TRAIN_SECONDS: ("train s", lambda v: "–" if pd.isna(v) else f"{float(v):.1f}"),
    }
    columns = {c: shown for c, shown in columns.items() if c in frame.columns}
    head = ["#", "trial", "state", *varying, *(header for header, _ in columns.values())]
    top = _ranked(frame, metric).head(TOP_TRIALS)
    body = "".join(
        f"<tr{' class=best' if best is not None and t[T.TRIAL_ID] == best[T.TRIAL_ID] else ''}><td class=num>{n}</td>"
        f"<td>{html.escape(str(t[T.TRIAL_ID]))}</td><td>{html.escape(STATE_LABELS[t[T.STATE]])}</td>"
        + "".join(f"<td class=num>{_e(t[T.config_column(p)])}</td>" for p in varying)
        + "".join(f"<td class=num>{show(t[c])}</td>" for c, (_, show) in columns.items())
        + "</tr>"
        for n, (_, t) in enumerate(top.iterrows(), start=1)
    )
    top_table = (
        f"<table><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr>{body}</table>"
        if len(top)
        else '<p class="note">No trial finished without error.</p>'
    )

    errored = frame[frame[T.STATE] == S.ERRORED]
    errors = (
        "<table><tr><th>trial</th><th>config</th><th>epochs run</th><th>error</th></tr>"
        + "".join(
            f"<tr><td>{html.escape(str(t[T.TRIAL_ID]))}</td><td>{html.escape(_params(t, varying))}</td>"
            f"<td class=num>{_e(t[T.EPOCHS_RUN])}</td><td class=error>{html.escape(str(t[T.ERROR] or '–'))}</td></tr>"
            for _, t in errored.iterrows()
        )
        + "</table>"
        if len(errored)
        else '<p class="note">No trial errored.</p>'
    )
    title = html.escape(f"Sweep {sweep_id}")
    name = html.escape(str(manifest.get("name", "")))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{CSS}</style></head>
<body>
<h1>{title}</h1><p class="note">spec {name} · sessrec sweep report</p>
<h2>Summary</h2><table class="summary">{rows}</table>
<h2>Plots</h2>{figures}
<h2>Top {min(TOP_TRIALS, len(top))} trials by final {html.escape(label)}</h2>{top_table}
<h2>Errored trials</h2>{errors}
</body></html>
"""
