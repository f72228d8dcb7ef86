"""The sweep report: the trials table, the manifest and the best trial's metrics in; PNG plots and
one self-contained ``index.html`` out, as bytes. No storage I/O here: the caller writes the files.

Plots are drawn on ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot, so
building a report changes no global matplotlib state (backend, open figures) of the caller.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from sessrec.core.metrics import metric_label
from sessrec.errors import SessrecError

# 'unfinished': a trial of a sweep that has not finished, read from its newest checkpoint (cut
# short, or stopped by ASHA: a checkpoint does not tell which). Shown only where there is one.
STATES = ("completed", "stopped_early", "errored", "unfinished")
STATE_COLORS = {"completed": "#2a9d8f", "stopped_early": "#f4a261", "errored": "#d62828", "unfinished": "#8d99ae"}
STATE_LABELS = {"completed": "completed", "stopped_early": "stopped early", "errored": "errored", "unfinished": "unfinished"}
REQUIRED_COLUMNS = ("trial_id", "state", "epochs_run", "curve", "error")

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
    trials: pd.DataFrame, manifest: dict[str, Any], best_metrics: dict[str, Any] | None, *, top_curves: int = 10
) -> dict[str, bytes]:
    """File name → content: one PNG per plot and an ``index.html`` that embeds them all."""
    metric = _check(trials, manifest)
    label = metric_label(metric, manifest.get("k"))
    frame = _normalise(trials, metric)
    config = [c.removeprefix("config.") for c in frame.columns if c.startswith("config.")]
    varying = [p for p in config if frame[f"config.{p}"].nunique(dropna=True) > 1]
    best = _best_trial(frame, manifest, metric)

    plots: list[_Plot] = []
    notes: list[str] = []
    covered: set[str] = set()
    for row, col in HEATMAP_PAIRS:
        if row not in varying or col not in varying:
            continue
        wide = [p for p in (row, col) if not _categorical(frame, p)]
        if wide:
            notes.append(
                f"No {row} × {col} heatmap: {', '.join(wide)} has more than {MAX_AXIS_VALUES} distinct values, "
                "or a value of its own in every trial (a range, not a grid)."
            )
            continue
        table = heatmap_table(frame, row, col, metric)
        if table.isna().all().all():
            notes.append(f"No {row} × {col} heatmap: no trial finished without error.")
            continue
        plots.append(_heatmap(table, row, col, label, best, [p for p in varying if p not in (row, col)]))
        covered.update((row, col))
    # With no scored trial (all errored) only the early-stopping picture has anything to show.
    if best is not None and varying and (len(varying) <= 2 or not set(varying) <= covered):
        plots.append(_by_parameter(frame, varying, metric, label, best))
    if best is not None and len(best["curve"]):
        plots.append(_curves(frame, varying, metric, label, best, top_curves))
    plots.append(_epochs_run(frame))

    files = {plot.name: plot.png for plot in plots}
    files[INDEX] = _html(frame, manifest, best_metrics, metric, config, varying, best, plots, notes).encode("utf-8")
    return files


def _categorical(frame: pd.DataFrame, param: str) -> bool:
    """A grid or choice: few values, shared by several trials. A range sampled at random gives
    every trial a value of its own, which reads as a number line, not as categories."""
    column = frame[f"config.{param}"].dropna()
    distinct = column.nunique()
    return distinct <= MAX_AXIS_VALUES and distinct < len(column)


def heatmap_table(trials: pd.DataFrame, row_param: str, col_param: str, metric: str) -> pd.DataFrame:
    """Best final ``metric`` of the non-errored trials per (row, column) value, other parameters collapsed.

    The best, not the mean: under ASHA a cell holds trials stopped after a few epochs next to
    ones that ran to the end, and a mean would rank cells by how many were stopped. Rows and
    columns are the sorted values of the two parameters seen in the sweep; a cell with no scored
    trial (none ran there, or all errored) is NaN and stays on the grid.
    """
    rows, cols = f"config.{row_param}", f"config.{col_param}"
    usable = trials[trials["state"] != "errored"]
    values = pd.to_numeric(usable[f"last_{metric}"], errors="coerce")
    table = values.groupby([usable[rows], usable[cols]]).max().unstack(cols)
    return table.reindex(index=sorted(trials[rows].dropna().unique()), columns=sorted(trials[cols].dropna().unique()))


# ---------------------------------------------------------------------------------------------
# Input


def _check(trials: pd.DataFrame, manifest: dict[str, Any]) -> str:
    metric = manifest.get("metric")
    if not metric:
        raise SessrecError("cannot build the report: the sweep manifest names no metric")
    if trials.empty:
        raise SessrecError(f"cannot build the report for sweep {manifest.get('sweep_id', '?')}: no trial has results yet "
                           f"(status: {manifest.get('status', '?')})")
    missing = [c for c in (*REQUIRED_COLUMNS, f"last_{metric}") if c not in trials.columns]
    if missing:
        raise SessrecError(f"cannot build the report: the trials table has no column {', '.join(missing)}")
    unknown = sorted(set(trials["state"]) - set(STATES))
    if unknown:
        raise SessrecError(f"cannot build the report: unknown trial state {', '.join(map(str, unknown))}")
    return metric


def _normalise(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    frame = trials.reset_index(drop=True).copy()
    # Parquet gives curves as numpy arrays, callers may give lists, an errored trial may have None.
    frame["curve"] = frame["curve"].map(lambda c: [float(v) for v in c] if isinstance(c, (list, tuple, np.ndarray)) else [])
    for column in {f"last_{metric}", "last_recall_at_k", "last_mrr_at_k"} & set(frame.columns):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def _best_trial(frame: pd.DataFrame, manifest: dict[str, Any], metric: str) -> pd.Series | None:
    """The manifest's best trial (the one whose embeddings were kept), else the best final metric."""
    chosen = (manifest.get("best") or {}).get("trial_id")
    match = frame[frame["trial_id"] == chosen]
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


def _position(values: list[Any], value: Any) -> int | None:
    # Float grid values come back from Parquet exactly, but compare with a tolerance anyway.
    for i, v in enumerate(values):
        if v == value or (isinstance(v, Real) and isinstance(value, Real) and math.isclose(v, value)):
            return i
    return None


def _heatmap(table: pd.DataFrame, row: str, col: str, metric_name: str, best: pd.Series | None, collapsed: list[str]) -> _Plot:
    rows, cols = list(table.index), list(table.columns)
    cells = table.to_numpy(dtype=float)
    figure = Figure(figsize=(1.6 + 1.05 * len(cols), 1.6 + 0.75 * len(rows)))
    ax = figure.subplots()
    cmap = colormaps["viridis"].with_extremes(bad="#d9d9d9")
    norm = Normalize(np.nanmin(cells), np.nanmax(cells))
    image = ax.imshow(np.ma.masked_invalid(cells), cmap=cmap, norm=norm, origin="lower", aspect="auto")
    figure.colorbar(image, ax=ax, label=f"final {metric_name}", fraction=0.06, pad=0.03)
    for i in range(len(rows)):
        for j in range(len(cols)):
            value = cells[i, j]
            if math.isnan(value):
                ax.text(j, i, "n/a", ha="center", va="center", color="#555555", fontsize=9)
                continue
            # Dark text on the light end of the colormap, white on the dark end.
            r, g, b, _ = cmap(norm(value))
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=9,
                    color="black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white")
    ax.set_xticks(range(len(cols)), [_fmt(v) for v in cols])
    ax.set_yticks(range(len(rows)), [_fmt(v) for v in rows])
    ax.set_xlabel(col)
    ax.set_ylabel(row)
    collapsed_text = f"best over {', '.join(collapsed)}" if collapsed else "best per cell"
    ax.set_title(f"final {metric_name}: {row} × {col}\n({collapsed_text})", fontsize=11)

    handles = []
    spot = None if best is None else (_position(rows, best[f"config.{row}"]), _position(cols, best[f"config.{col}"]))
    if spot is not None and None not in spot:
        ax.add_patch(Rectangle((spot[1] - 0.5, spot[0] - 0.5), 1, 1, fill=False, edgecolor="#e63946", linewidth=3.5))
        handles.append(Patch(fill=False, edgecolor="#e63946", linewidth=2.5, label=f"best trial {best['trial_id']}"))
    default = (_position(rows, GENSIM_DEFAULTS[row]), _position(cols, GENSIM_DEFAULTS[col]))
    default_text = f"gensim default ({row}={_fmt(GENSIM_DEFAULTS[row])}, {col}={_fmt(GENSIM_DEFAULTS[col])})"
    if None in default:
        # No cell to mark: say so in the legend, where the reader looks for the default.
        handles.append(Patch(visible=False, label=f"{default_text}: not among the values tried"))
    else:
        # Inset so that it stays visible when the best trial sits on the default cell; black dashes
        # over a white line read on both ends of the colormap.
        for color, style in (("white", "-"), ("black", (0, (3, 3)))):
            ax.add_patch(Rectangle((default[1] - 0.36, default[0] - 0.36), 0.72, 0.72, fill=False,
                                   edgecolor=color, linewidth=2, linestyle=style))
        handles.append(Patch(fill=False, edgecolor="black", linewidth=1.5, linestyle="--", label=default_text))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False, fontsize=8)
    marks = f"{default_text} was not among the values tried" if None in default else "dashed box: gensim's default"
    grey = " Grey cells: no scored trial (none ran there, or every one errored)." if np.isnan(cells).any() else ""
    caption = f"Final {metric_name} of the non-errored trials, {collapsed_text}. Red box: the best trial's cell; {marks}.{grey}"
    return _Plot(f"heatmap_{row}_x_{col}.png", f"{row} × {col}", caption, _png(figure))


def _by_parameter(frame: pd.DataFrame, varying: list[str], metric: str, metric_name: str, best: pd.Series) -> _Plot:
    usable = frame[(frame["state"] != "errored") & frame[f"last_{metric}"].notna()]
    columns = min(len(varying), 3)
    lines = math.ceil(len(varying) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.4 * lines), layout="constrained")
    axes = figure.subplots(lines, columns, squeeze=False).ravel()
    for ax, param in zip(axes, varying):
        x, y = usable[f"config.{param}"], usable[f"last_{metric}"]
        values = sorted(frame[f"config.{param}"].dropna().unique())
        if _categorical(frame, param):
            # A grid or choice: evenly spaced values, the best per value as a line through the trials
            # (the best, as in the heatmaps; a line, not bars: the y axis is zoomed in).
            where = x.map(lambda v: _position(values, v))
            bests = y.groupby(where).max().reindex(range(len(values)))
            ax.scatter(where, y, s=14, color="#1d3557", alpha=0.7, zorder=3, label="trial")
            ax.plot(range(len(values)), bests.to_numpy(), color="#2a9d8f", marker="D", linewidth=2, label="best per value")
            ax.set_xticks(range(len(values)), [_fmt(v) for v in values])
            best_x = _position(values, best[f"config.{param}"])
        else:
            # A continuous range: a scatter, on a log axis when it spans orders of magnitude.
            ax.scatter(x, y, s=14, color="#1d3557", label="trial")
            if min(values) > 0 and max(values) / min(values) >= 100:
                ax.set_xscale("log")
            best_x = best[f"config.{param}"]
        ax.scatter([best_x], [best[f"last_{metric}"]], s=90, marker="*", color="#e63946", zorder=4, label="best trial")
        low, high = y.min(), y.max()
        pad = max((high - low) * 0.15, 0.01)
        ax.set_ylim(max(low - pad, 0), high + pad)
        ax.set_xlabel(param)
        ax.set_ylabel(f"final {metric_name}")
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(varying):]:
        ax.set_visible(False)
    # One legend for all panels: each panel has only some of the entries (no line on a scatter).
    entries = dict(pair for ax in axes for pair in zip(*reversed(ax.get_legend_handles_labels())))
    figure.legend(entries.values(), entries.keys(), loc="outside lower center", ncol=len(entries), frameon=False, fontsize=8)
    figure.suptitle(f"final {metric_name} by parameter", fontsize=11)
    caption = (f"Final {metric_name} of every non-errored trial against each varying parameter (a trial ASHA stopped "
               "early scores at its last epoch), with the best per value of a grid or choice.")
    return _Plot("metric_by_parameter.png", "Metric by parameter", caption, _png(figure))


def _curves(frame: pd.DataFrame, varying: list[str], metric: str, metric_name: str, best: pd.Series, top: int) -> _Plot:
    ranked = _ranked(frame, metric)
    ranked = ranked[ranked["curve"].map(len) > 0].head(top)
    figure = Figure(figsize=(9.5, 4.6))
    ax = figure.subplots()
    colors = colormaps["tab10"]
    for n, (_, trial) in enumerate(ranked.iterrows()):
        is_best = trial["trial_id"] == best["trial_id"]
        curve = trial["curve"]
        params = ", ".join(f"{p}={_fmt(trial[f'config.{p}'])}" for p in varying)
        label = f"{trial['trial_id']}" + (f" ({params})" if params else "") + (" ★ best" if is_best else "")
        ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, color=colors(n % 10),
                linewidth=3 if is_best else 1.4, linestyle="-" if trial["state"] == "completed" else "--", label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric_name}")
    ax.grid(alpha=0.3)
    ax.set_title(f"validation {metric_name} per epoch, top {len(ranked)} trials by final value", fontsize=11)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    dashed = "stopped early by ASHA, or unfinished" if (ranked["state"] == "unfinished").any() else "stopped early by ASHA"
    caption = f"Validation {metric_name} after each epoch for the {len(ranked)} best trials (dashed: {dashed})."
    return _Plot("curves.png", "Learning curves", caption, _png(figure))


def _epochs_run(frame: pd.DataFrame) -> _Plot:
    epochs = range(int(frame["epochs_run"].min()), int(frame["epochs_run"].max()) + 1)
    states = _states_shown(frame)
    counts = pd.crosstab(frame["epochs_run"], frame["state"]).reindex(index=epochs, columns=states, fill_value=0)
    figure = Figure(figsize=(7, 3.8))
    ax = figure.subplots()
    bottom = np.zeros(len(epochs))
    for state in states:
        heights = counts[state].to_numpy()
        ax.bar(list(epochs), heights, bottom=bottom, color=STATE_COLORS[state], width=0.8,
               label=f"{STATE_LABELS[state]} ({int(heights.sum())})")
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
    if "unfinished" in states:
        caption += " Unfinished: the sweep has not finished, and the trial's newest checkpoint has fewer epochs than its config."
    return _Plot("epochs_run.png", "Early stopping", caption, _png(figure))


def _states_shown(frame: pd.DataFrame) -> list[str]:
    return [s for s in STATES if s != "unfinished" or (frame["state"] == s).any()]


def _ranked(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    usable = frame[(frame["state"] != "errored") & frame[f"last_{metric}"].notna()]
    return usable.sort_values([f"last_{metric}", "trial_id"], ascending=[False, True], kind="stable")


# ---------------------------------------------------------------------------------------------
# HTML

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1d1d1f; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
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
    return " · ".join(f"{_e(metric_label(metric, k))} {_score(metrics.get(metric))}" for metric in ("recall_at_k", "mrr_at_k"))


def _params(trial: pd.Series, names: list[str]) -> str:
    return ", ".join(f"{name}={_fmt(trial[f'config.{name}'])}" for name in names) or "–"


def _html(
    frame: pd.DataFrame, manifest: dict[str, Any], best_metrics: dict[str, Any] | None, metric: str,
    config: list[str], varying: list[str], best: pd.Series | None, plots: list[_Plot], notes: list[str],
) -> str:
    sweep_id = str(manifest.get("sweep_id", "?"))
    dataset, split = manifest.get("dataset") or {}, manifest.get("split") or {}
    counts = frame["state"].value_counts()
    fixed = [p for p in config if p not in varying]
    versions = ", ".join(f"{name} {value}" for name, value in (manifest.get("versions") or {}).items())
    test = (best_metrics or {}).get("test")
    summary = [
        ("Status", manifest.get("status", "?") if manifest.get("trials")  # a finished run's summary
         else f"{manifest.get('status', '?')}: not finished, trials as their newest checkpoints left them"),
        ("Trials", f"{len(frame)} of {_fmt(manifest.get('planned_trials'))} planned: "
                   + ", ".join(f"{int(counts.get(s, 0))} {STATE_LABELS[s]}" for s in _states_shown(frame))),
        ("Dataset", f"{dataset.get('ref', '?')} (sha256 {str(dataset.get('sha256', '?'))[:12]})"),
        ("Split", f"seed {_fmt(split.get('seed'))}, N {_fmt(split.get('n'))}"),
        ("K", _fmt(manifest.get("k"))),
        ("Metric", metric),
        ("Best trial", "–" if best is None
         else f"{best['trial_id']} ({STATE_LABELS[best['state']]}, {_fmt(best['epochs_run'])} epochs)"),
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
        f'<figure><img alt="{html.escape(p.title)}" src="data:image/png;base64,{base64.b64encode(p.png).decode("ascii")}">'
        f"<figcaption>{html.escape(p.caption)}</figcaption></figure>"
        for p in plots
    )
    figures += "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)

    # Column → (header, formatter); the optional columns of the trials table only when present.
    k = manifest.get("k")
    label = metric_label(metric, k)
    columns = {
        f"last_{metric}": (f"final {label}", _score),
        "last_recall_at_k": (f"final {metric_label('recall_at_k', k)}", _score),
        "last_mrr_at_k": (f"final {metric_label('mrr_at_k', k)}", _score),
        f"best_{metric}": (f"best {label}", _score),
        "best_epoch": ("at epoch", _e),
        "epochs_run": ("epochs run", _e),
        "train_seconds": ("train s", lambda v: "–" if pd.isna(v) else f"{float(v):.1f}"),
    }
    columns = {c: shown for c, shown in columns.items() if c in frame.columns}
    head = ["#", "trial", "state", *varying, *(header for header, _ in columns.values())]
    top = _ranked(frame, metric).head(TOP_TRIALS)
    body = "".join(
        f'<tr{" class=best" if best is not None and t["trial_id"] == best["trial_id"] else ""}><td class=num>{n}</td>'
        f"<td>{html.escape(str(t['trial_id']))}</td><td>{html.escape(STATE_LABELS[t['state']])}</td>"
        + "".join(f"<td class=num>{_e(t[f'config.{p}'])}</td>" for p in varying)
        + "".join(f"<td class=num>{show(t[c])}</td>" for c, (_, show) in columns.items())
        + "</tr>"
        for n, (_, t) in enumerate(top.iterrows(), start=1)
    )
    top_table = (
        f"<table><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr>{body}</table>"
        if len(top) else '<p class="note">No trial finished without error.</p>'
    )

    errored = frame[frame["state"] == "errored"]
    errors = (
        "<table><tr><th>trial</th><th>config</th><th>epochs run</th><th>error</th></tr>"
        + "".join(
            f"<tr><td>{html.escape(str(t['trial_id']))}</td><td>{html.escape(_params(t, varying))}</td>"
            f"<td class=num>{_e(t['epochs_run'])}</td><td class=error>{html.escape(str(t['error'] or '–'))}</td></tr>"
            for _, t in errored.iterrows()
        )
        + "</table>"
        if len(errored) else '<p class="note">No trial errored.</p>'
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
