"""The report's one self-contained HTML page: a summary of the sweep, the plots embedded as PNG,
the top trials and the errored ones."""

from __future__ import annotations

import base64
import html
from typing import Any

import pandas as pd

from sessrec.core.metrics import metric_label
from sessrec.report.readings import (
    STATE_LABELS,
    Plot,
    fmt,
    ranked_trials,
    states_shown,
)
from sessrec.sweep import trials as T
from sessrec.sweep.trials import TrialState as S

TOP_TRIALS = 20

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
    return html.escape(fmt(value))


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
    return ", ".join(f"{name}={fmt(trial[T.config_column(name)])}" for name in names) or "–"


def render_page(
    frame: pd.DataFrame,
    manifest: dict[str, Any],
    best_metrics: dict[str, Any] | None,
    metric: str,
    config: list[str],
    varying: list[str],
    best: pd.Series | None,
    plots: list[Plot],
    notes: list[str],
) -> str:
    """The report's HTML page: the sweep's summary (from ``manifest`` and ``best_metrics``), the
    ``plots`` embedded as PNG with the ``notes``, the top trials by final ``metric`` and the errored
    ones."""
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
            f"{len(frame)} of {fmt(manifest.get('planned_trials'))} planned: "
            + ", ".join(f"{int(counts.get(s, 0))} {STATE_LABELS[s]}" for s in states_shown(frame)),
        ),
        ("Dataset", f"{dataset.get('ref', '?')} (sha256 {str(dataset.get('sha256', '?'))[:12]})"),
        ("Split", f"seed {fmt(split.get('seed'))}, N {fmt(split.get('n'))}"),
        ("K", fmt(manifest.get("k"))),
        ("Metric", metric),
        (
            "Best trial",
            "–"
            if best is None
            else f"{best[T.TRIAL_ID]} ({STATE_LABELS[best[T.STATE]]}, {fmt(best[T.EPOCHS_RUN])} epochs)",
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
    top = ranked_trials(frame, metric).head(TOP_TRIALS)
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
