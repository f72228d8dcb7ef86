"""The readings of a sweep's trials table that every part of the report shares: its checks and
normal form, the best trial, trials ranked, values at an equal epoch, axis positions, the states'
colours and labels, value formats, and a plot as PNG bytes."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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

# Beyond this many distinct values an axis is a continuous (random) search: a heatmap would be a
# sparse checkerboard, so that parameter is shown in the per-parameter plot instead.
MAX_AXIS_VALUES = 12


@dataclass(frozen=True)
class Plot:
    """One plot of the report: its file name, its title and caption on the page, its PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes


def is_categorical(frame: pd.DataFrame, param: str) -> bool:
    """A grid or choice: few values, shared by several trials. A range sampled at random gives
    every trial a value of its own, which reads as a number line, not as categories."""
    column = frame[T.config_column(param)].dropna()
    distinct = column.nunique()
    return distinct <= MAX_AXIS_VALUES and distinct < len(column)


def check_trials(trials: pd.DataFrame, manifest: dict[str, Any]) -> str:
    """The metric the ``manifest`` names, if the trials table can make a report (some trials, the
    columns it needs, known states); else a SessrecError."""
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


def normalise(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """A copy of ``trials`` with a fresh index, each curve a list of floats (``[]`` where there is
    none) and the final-metric columns numeric (NaN where not)."""
    frame = trials.reset_index(drop=True).copy()
    # Parquet gives curves as numpy arrays, callers may give lists, an errored trial may have None.
    frame[T.CURVE] = frame[T.CURVE].map(
        lambda c: [float(v) for v in c] if isinstance(c, (list, tuple, np.ndarray)) else []
    )
    for column in {T.last_column(metric), T.LAST_RECALL, T.LAST_MRR} & set(frame.columns):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def best_trial(frame: pd.DataFrame, manifest: dict[str, Any], metric: str) -> pd.Series | None:
    """The manifest's best trial (the one whose embeddings were kept), else the best final metric."""
    chosen = (manifest.get("best") or {}).get("trial_id")
    match = frame[frame[T.TRIAL_ID] == chosen]
    if len(match):
        return match.iloc[0]
    ranked = ranked_trials(frame, metric)
    return None if ranked.empty else ranked.iloc[0]


def to_png(figure: Figure) -> bytes:
    """The figure as PNG bytes (110 dpi, cropped to its content)."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def fmt(value: Any) -> str:
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


def spans_decades(frame: pd.DataFrame, param: str) -> bool:
    """A numeric range over two orders of magnitude or more: drawn on a log axis even where the
    spec is not at hand to say it was sampled on a log scale."""
    values = pd.to_numeric(frame[T.config_column(param)], errors="coerce").dropna()
    return (
        not is_categorical(frame, param) and len(values) > 0 and values.min() > 0 and values.max() / values.min() >= 100
    )


def common_epoch(frame: pd.DataFrame) -> int | None:
    """The last epoch every scored trial reached (under ASHA, its first rung), where trials ran
    for different numbers of epochs; None where they all ran as long (then finals compare)."""
    scored = frame[frame[T.STATE] != S.ERRORED][T.CURVE].map(len)
    scored = scored[scored > 0]
    if scored.empty or scored.min() == scored.max():
        return None
    return int(scored.min())


def at_epoch(trials: pd.DataFrame, epoch: int) -> pd.Series:
    """Each trial's metric after ``epoch`` (its curve), NaN for a trial that did not reach it."""
    return trials[T.CURVE].map(lambda c: float(c[epoch - 1]) if len(c) >= epoch else math.nan).astype(float)


def metric_shown(metric_name: str, rung: int | None) -> str:
    """How a plot names the metric: "final NAME", or "NAME at epoch RUNG" with a ``rung``."""
    return f"final {metric_name}" if rung is None else f"{metric_name} at epoch {rung}"


def rung_note(rung: int | None) -> str:
    """The caption's sentence that every trial is taken at epoch ``rung``; "" without a rung."""
    if rung is None:
        return ""
    return (
        f" Every trial is taken at epoch {rung}, the first ASHA rung, which every non-errored trial reached: "
        "trials stopped there are compared with the others at equal epochs, not with their later finals."
    )


def position(values: list[Any], value: Any) -> int | None:
    """The index of ``value`` among ``values`` (numbers compared with ``math.isclose``), or None."""
    # Float grid values come back from Parquet exactly, but compare with a tolerance anyway.
    for i, v in enumerate(values):
        if v == value or (isinstance(v, Real) and isinstance(value, Real) and math.isclose(v, value)):
            return i
    return None


def states_shown(frame: pd.DataFrame) -> list[str]:
    """The trial states a plot shows, in the table's order: UNFINISHED only where a trial has it."""
    return [s for s in T.TABLE_STATES if s != S.UNFINISHED or (frame[T.STATE] == s).any()]


def ranked_trials(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The non-errored trials with a final ``metric``, best first (ties by trial id)."""
    usable = frame[(frame[T.STATE] != S.ERRORED) & frame[T.last_column(metric)].notna()]
    return usable.sort_values([T.last_column(metric), T.TRIAL_ID], ascending=[False, True], kind="stable")
