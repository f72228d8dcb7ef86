"""The sweep report: the trials table, the manifest and the best trial's metrics in; PNG plots and
one self-contained ``index.html`` out, as bytes. No storage I/O here: the caller writes the files.

Plots are drawn on ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot, so
building a report changes no global matplotlib state (backend, open figures) of the caller.

One module per idea, all readings of the same trials table: ``readings`` (what they share: checks,
the best trial, equal-epoch values, axis positions, formats), ``pairs`` (heatmaps and pair
scatters), ``parameters`` (metric by parameter, parallel coordinates), ``curves`` (learning curves,
early stopping) and ``page`` (the HTML); ``build_report`` here puts them together.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pandas as pd

from sessrec.core.metrics import metric_label
from sessrec.errors import SessrecError
from sessrec.report.curves import epochs_run, learning_curves
from sessrec.report.page import render_page
from sessrec.report.pairs import HEATMAP_PAIRS, heatmap, heatmap_table, pair_scatter
from sessrec.report.parameters import by_parameter, parallel
from sessrec.report.readings import (
    Plot,
    best_trial,
    check_trials,
    common_epoch,
    is_categorical,
    normalise,
    spans_decades,
)
from sessrec.sweep import trials as T

__all__ = ["INDEX", "build_report", "heatmap_table", "log_scale_params"]

INDEX = "index.html"


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
    metric = check_trials(trials, manifest)
    label = metric_label(metric, manifest.get("k"))
    frame = normalise(trials, metric)
    config = [c.removeprefix(T.CONFIG_PREFIX) for c in T.config_columns(frame.columns)]
    varying = [p for p in config if frame[T.config_column(p)].nunique(dropna=True) > 1]
    best = best_trial(frame, manifest, metric)
    logs = {p for p in varying if p in log_params or spans_decades(frame, p)}
    # Trials ASHA stopped at a rung are compared with the others at the same epoch: the rung that
    # every scored trial reached (the final epoch when all ran as long).
    rung = common_epoch(frame)

    plots: list[Plot] = []
    notes: list[str] = []
    covered: set[str] = set()
    for row, col in HEATMAP_PAIRS:
        if row not in varying or col not in varying:
            continue
        table = heatmap_table(frame, row, col, metric, epoch=rung)
        if table.isna().all().all():
            notes.append(f"No {row} × {col} heatmap: no trial finished without error.")
            continue
        sparse = any(not is_categorical(frame, p) for p in (row, col)) or table.isna().to_numpy().mean() > 0.5
        others = [p for p in varying if p not in (row, col)]
        if sparse:
            # A random search: a heatmap of its ranges would be mostly empty cells.
            plots.append(pair_scatter(frame, row, col, metric, label, best, rung, logs))
        else:
            plots.append(heatmap(table, row, col, label, best, others, rung))
        covered.update((row, col))
    # With no scored trial (all errored) only the early-stopping picture has anything to show.
    if best is not None and varying and (len(varying) <= 2 or not set(varying) <= covered):
        plots.append(by_parameter(frame, varying, metric, label, best, logs))
    if best is not None and len(varying) >= 2:
        plots.append(parallel(frame, varying, metric, label, logs))
    if best is not None and len(best[T.CURVE]):
        plots.append(learning_curves(frame, varying, metric, label, best, top_curves))
    plots.append(epochs_run(frame))

    files = {plot.name: plot.png for plot in plots}
    page = render_page(frame, manifest, best_metrics, metric, config, varying, best, plots, notes)
    files[INDEX] = page.encode("utf-8")
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
