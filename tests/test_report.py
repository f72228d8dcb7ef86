"""The sweep report on synthetic trials tables: no Ray, no storage."""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import re
import shutil
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg

from sessrec.errors import SessrecError
from sessrec.report import build_report, heatmap_table
from sessrec.sweep.trials import TrialsTable, TrialState

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEATMAPS = {"heatmap_negative_x_ns_exponent.png", "heatmap_window_x_ns_exponent.png", "heatmap_window_x_negative.png"}
NASTY_ERROR = 'ValueError: <script>alert("x")</script> & naïve → 失败'


def _score(window: int, negative: int, ns_exponent: float) -> float:
    # A smooth landscape with a unique top at window 5, negative 10, ns_exponent 0 (not gensim's default).
    return round(0.7 - 0.01 * abs(window - 5) - 0.004 * abs(negative - 10) - 0.05 * abs(ns_exponent), 6)


def _trial(n: int, config: dict, state: str, final: float | None, epochs: int, error: str | None = None) -> dict:
    """A row of the real trials table (``TrialsTable.row``), so the report meets its schema."""
    curve = [] if final is None else list(np.linspace(final / 2, final, epochs))
    return TrialsTable.row(
        trial_id=f"abcde_{n:05d}",
        point=n,
        state=TrialState(state),
        config=config,
        epochs_run=epochs,
        restored=False,
        metric="recall_at_k",
        last={"recall_at_k": final, "mrr_at_k": None if final is None else final / 2},
        best=final,
        best_epoch=None if final is None else epochs,
        train_seconds=0.1 * epochs,
        eval_seconds=0.01 * epochs,
        peak_rss_mb=None,
        curve=curve,
        error=error,
    )


def _frame(rows: list[dict]) -> pd.DataFrame:
    return TrialsTable.from_rows(rows).frame


def _grid_trials() -> pd.DataFrame:
    """36 trials over window × negative × ns_exponent (gensim's defaults on the grid); some stopped early,
    two errored."""
    rows = []
    grid = itertools.product([2, 5, 8], [1, 5, 10], [-0.5, 0.0, 0.75, 1.0])
    for n, (window, negative, ns_exponent) in enumerate(grid):
        config = {"vector_size": 32, "alpha": 0.05, "epochs": 6}
        config.update(window=window, negative=negative, ns_exponent=ns_exponent)
        if n in (3, 17):
            rows.append(_trial(n, config, "errored", None, 1, NASTY_ERROR if n == 3 else "RuntimeError: out of memory"))
        else:
            state, epochs = ("stopped_early", 2) if n % 5 == 1 else ("completed", 6)
            rows.append(_trial(n, config, state, _score(window, negative, ns_exponent), epochs))
    return _frame(rows)


def _manifest(trials: pd.DataFrame, best: str | None = None, sweep_id: str = "grid-sweep") -> dict:
    counts = trials["state"].value_counts()
    return {
        "sweep_id": sweep_id,
        "name": "grid",
        "status": "completed",
        "metric": "recall_at_k",
        "k": 10,
        "planned_trials": len(trials),
        "trials": {
            "total": len(trials),
            **{s: int(counts.get(s, 0)) for s in ("completed", "stopped_early", "errored")},
        },
        "best": {"trial_id": best, "recall_at_k": 0.7} if best else {},
        "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T00:10:00+00:00",
        "dataset": {"ref": "demo", "sha256": "7d834921cda99305b5ace41e025529778ba1af8701fc51c061a015fe609b8cc1"},
        "split": {"seed": 0, "n": 200},
        "versions": {"sessrec": "0.1.0", "ray": "2.60.0"},
    }


def _best_metrics(trial_id: str) -> dict:
    return {
        "trial_id": trial_id,
        "epochs": 6,
        "validation": {"recall_at_k": 0.7, "mrr_at_k": 0.35, "k": 10},
        "test": {"recall_at_k": 0.6875, "mrr_at_k": 0.3125, "k": 10, "pairs": 200},
    }


def _best_id(trials: pd.DataFrame) -> str:
    usable = trials[trials["state"] != "errored"]
    return usable.loc[usable["last_recall_at_k"].idxmax(), "trial_id"]


def _check_pngs(files: dict[str, bytes]) -> None:
    for name, content in files.items():
        if name.endswith(".png"):
            assert content.startswith(PNG_SIGNATURE), name
            pixels = mpimg.imread(io.BytesIO(content), format="png")
            assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100, name


def _check_html(files: dict[str, bytes], sweep_id: str) -> str:
    page = files["index.html"].decode("utf-8")
    assert f"Sweep {sweep_id}" in page
    for name, content in files.items():
        if name.endswith(".png"):
            assert f"data:image/png;base64,{base64.b64encode(content).decode('ascii')}" in page, name
    # Self-contained: no resource fetched from anywhere.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "http://" not in page and "https://" not in page and "url(" not in page
    return page


@pytest.fixture(scope="module")
def grid_report() -> tuple[pd.DataFrame, dict[str, bytes]]:
    trials = _grid_trials()
    best = _best_id(trials)
    return trials, build_report(trials, _manifest(trials, best), _best_metrics(best))


def test_grid_report_files(grid_report):
    _, files = grid_report
    assert set(files) == HEATMAPS | {"parallel_coordinates.png", "curves.png", "epochs_run.png", "index.html"}
    _check_pngs(files)


def test_grid_report_html(grid_report):
    trials, files = grid_report
    page = _check_html(files, "grid-sweep")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; naïve → 失败" in page
    assert "RuntimeError: out of memory" in page
    assert "7d834921cda9" in page and "7d834921cda99" not in page
    best = trials.loc[trials["trial_id"] == _best_id(trials)].iloc[0]
    assert best["config.window"] == 5 and best["config.negative"] == 10 and best["config.ns_exponent"] == 0
    assert "negative=10, ns_exponent=0, window=5" in page
    assert "not among the values tried" not in page
    assert "Recall@10 0.6875 · MRR@10 0.3125" in page and "on 200 pairs" in page
    # Plots, captions and the table name the metric with its K.
    assert "Recall@10 at epoch 2 of the non-errored trials" in page and "Validation Recall@10 after each epoch" in page
    assert "<th>final Recall@10</th>" in page and "<th>final MRR@10</th>" in page and "final recall_at_k" not in page
    # The top table holds 20 trials, the best first.
    top = page.split("Top 20 trials by final Recall@10")[1].split("Errored trials")[0]
    rows = re.findall(r"<tr.*?</tr>", top)
    assert len(rows) == 21 and best["trial_id"] in rows[1] and "class=best" in rows[1]
    assert "unfinished" not in page and "not finished" not in page  # a finished sweep's states only


def test_unfinished_sweep_reports_its_trials_as_their_checkpoints_left_them():
    trials = _grid_trials()
    trials.loc[trials["state"] == "stopped_early", "state"] = "unfinished"  # what checkpoints say of a trial cut short
    manifest = {k: v for k, v in _manifest(trials).items() if k not in ("trials", "finished")} | {
        "status": "interrupted"
    }
    files = build_report(trials, manifest, None)
    _check_pngs(files)
    page = _check_html(files, "grid-sweep")
    assert "interrupted: not finished, trials as their newest checkpoints left them" in page
    assert "0 stopped early, 2 errored, 7 unfinished" in page
    assert "Unfinished: the sweep has not finished" in page and "(dashed: stopped early by ASHA, or unfinished)" in page


def test_heatmap_table_is_the_best_over_the_collapsed_parameter():
    trials = _frame(
        [
            _trial(0, {"window": 1, "negative": 5, "ns_exponent": 0.0}, "completed", 0.2, 3),
            _trial(1, {"window": 2, "negative": 5, "ns_exponent": 0.0}, "stopped_early", 0.4, 1),
            _trial(2, {"window": 1, "negative": 5, "ns_exponent": 0.75}, "completed", 0.5, 3),
            _trial(3, {"window": 2, "negative": 5, "ns_exponent": 0.75}, "errored", 0.9, 1, "boom"),
            _trial(4, {"window": 1, "negative": 10, "ns_exponent": 0.0}, "completed", 0.1, 3),
            _trial(5, {"window": 2, "negative": 10, "ns_exponent": 0.0}, "completed", 0.3, 3),
        ]
    )
    table = heatmap_table(trials, "negative", "ns_exponent", "recall_at_k")
    assert list(table.index) == [5, 10] and list(table.columns) == [0.0, 0.75]
    # Collapsing window; the errored trial (0.9) does not count; negative 10 × 0.75 was never run.
    # The best, not the mean: a mean would rank a cell by how many of its trials ASHA stopped early.
    assert table.loc[5, 0.0] == pytest.approx(max(0.2, 0.4))
    assert table.loc[5, 0.75] == pytest.approx(0.5)
    assert table.loc[10, 0.0] == pytest.approx(max(0.1, 0.3))
    assert np.isnan(table.loc[10, 0.75])


def test_best_cell_of_the_grid_is_the_best_trials_config():
    trials = _grid_trials()
    best = trials.loc[trials["trial_id"] == _best_id(trials)].iloc[0]
    for row, col in (("negative", "ns_exponent"), ("window", "ns_exponent"), ("window", "negative")):
        table = heatmap_table(trials, row, col, "recall_at_k")
        assert table.stack().idxmax() == (best[f"config.{row}"], best[f"config.{col}"])


def test_one_dimensional_sweep_falls_back_to_metric_by_parameter():
    rows = [
        _trial(n, {"window": 5, "negative": negative, "ns_exponent": 0.75, "epochs": 4}, "completed", 0.5 + 0.01 * n, 4)
        for n, negative in enumerate([1, 2, 5, 10, 20])
    ]
    trials = _frame(rows)
    files = build_report(trials, _manifest(trials, sweep_id="one-d"), None)
    assert set(files) == {"metric_by_parameter.png", "curves.png", "epochs_run.png", "index.html"}
    _check_pngs(files)
    page = _check_html(files, "one-d")
    assert "negative=20" in page  # the best config, picked from the table when the manifest has none


def test_continuous_search_draws_scatters_not_wide_heatmaps():
    rng = np.random.default_rng(0)
    rows = [
        _trial(
            n,
            {
                "window": int(rng.integers(1, 4)),
                "negative": int(rng.integers(1, 4)),
                "ns_exponent": float(rng.uniform(-1, 1)),
                "alpha": float(rng.uniform(0.001, 0.5)),
            },
            "completed",
            float(rng.uniform(0.3, 0.6)),
            3,
        )
        for n in range(30)
    ]
    trials = _frame(rows)
    files = build_report(trials, _manifest(trials, sweep_id="random"), None)
    expected = {
        "heatmap_window_x_negative.png",
        "scatter_negative_x_ns_exponent.png",
        "scatter_window_x_ns_exponent.png",
        "metric_by_parameter.png",
        "parallel_coordinates.png",
        "curves.png",
        "epochs_run.png",
    }
    assert set(files) == expected | {"index.html"}
    _check_pngs(files)
    assert "a random search leaves most cells of a heatmap empty" in _check_html(files, "random")


def test_a_small_random_search_puts_its_ranges_on_number_lines_not_categories():
    """Four trials of a range give four values, one each: as heatmap cells or evenly spaced
    categories they would read as a grid that was never searched."""
    rows = [
        _trial(n, {"window": w, "negative": 5 + n % 2, "ns_exponent": x}, "completed", 0.3 + n / 100, 3)
        for n, (w, x) in enumerate([(2, 0.11), (2, 0.13), (7, -0.52), (7, 0.64)])
    ]
    trials = _frame(rows)
    files = build_report(trials, _manifest(trials, sweep_id="small-random"), None)
    assert "heatmap_window_x_negative.png" in files
    assert not any(name.startswith("heatmap_") and "ns_exponent" in name for name in files)
    assert {"scatter_negative_x_ns_exponent.png", "scatter_window_x_ns_exponent.png"} <= set(files)


def test_defaults_outside_the_grid_are_noted():
    trials = _grid_trials()
    trials = trials[trials["config.ns_exponent"] != 0.75]
    files = build_report(trials, _manifest(trials, sweep_id="no-default"), None)
    page = files["index.html"].decode("utf-8")
    # Both heatmaps with ns_exponent; window × negative still has its default cell.
    assert page.count("ns_exponent=0.75) was not among the values tried") == 2
    assert page.count("dashed box: gensim&#x27;s default") == 1


def test_every_trial_errored():
    trials = _frame(
        [_trial(n, {"window": w, "negative": 5}, "errored", None, 0, f"error {n}") for n, w in enumerate([2, 5])]
    )
    manifest = dict(_manifest(trials, sweep_id="failed"), status="failed")
    files = build_report(trials, manifest, None)
    assert set(files) == {"epochs_run.png", "index.html"}
    _check_pngs(files)
    page = _check_html(files, "failed")
    assert "error 0" in page and "error 1" in page and "No trial finished without error." in page


def test_curves_from_parquet_arrays(tmp_path):
    # Parquet hands curves back as numpy arrays, errored trials' as empty ones.
    trials = _grid_trials()
    path = tmp_path / "trials.parquet"
    trials.to_parquet(path)
    files = build_report(pd.read_parquet(path), _manifest(trials), None)
    assert "curves.png" in files


@pytest.mark.parametrize(
    ("trials", "message"),
    [
        (_grid_trials().iloc[0:0], "no trial has results yet"),
        (_grid_trials().drop(columns=["curve", "state"]), "no column state, curve"),
        (_grid_trials().drop(columns=["last_recall_at_k"]), "no column last_recall_at_k"),
    ],
)
def test_bad_tables_are_refused(trials, message):
    with pytest.raises(SessrecError, match=message):
        build_report(trials, _manifest(_grid_trials()), None)


# ---------------------------------------------------------------------------------------------
# Honest plots (issue #23): equal epochs under ASHA, log axes, scatter for random search, parallel coordinates


def test_trials_of_different_lengths_are_compared_at_the_first_rung(grid_report):
    trials, files = grid_report
    page = files["index.html"].decode("utf-8")
    # The grid has trials stopped at epoch 2 beside 6-epoch ones: the heatmaps take every trial at epoch 2.
    assert "Recall@10 at epoch 2 of the non-errored trials" in page
    assert "trials stopped there are compared with the others at equal epochs" in page
    table = heatmap_table(trials, "window", "negative", "recall_at_k", epoch=2)
    at_two = trials[trials["state"] != "errored"]["curve"].map(lambda c: c[1])
    assert table.max().max() == pytest.approx(at_two.max())


def test_all_trials_as_long_compare_their_finals():
    rows = [
        _trial(n, {"window": w, "negative": g, "ns_exponent": 0.75}, "completed", _score(w, g, 0.75), 4)
        for n, (w, g) in enumerate(itertools.product([2, 5, 8], [1, 5, 10]))
    ]
    trials = _frame(rows)
    page = build_report(trials, _manifest(trials, sweep_id="even"), None)["index.html"].decode("utf-8")
    assert "Final Recall@10 of the non-errored trials" in page and "Recall@10 at epoch" not in page


def _random_trials(n: int = 36) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        _trial(
            i,
            {
                "window": int(rng.integers(1, 21)),
                "negative": int(rng.integers(1, 20)),
                "ns_exponent": float(rng.uniform(-1, 1)),
                "alpha": float(np.exp(rng.uniform(np.log(0.01), np.log(0.2)))),
            },
            "completed" if i % 3 else "stopped_early",
            float(rng.uniform(0.3, 0.6)),
            6 if i % 3 else 2,
        )
        for i in range(n)
    ]
    rows.append(_trial(n, {"window": 3, "negative": 4, "ns_exponent": 0.1, "alpha": 0.01}, "errored", None, 1, "boom"))
    return _frame(rows)


def test_a_random_search_gets_scatters_log_axes_and_parallel_coordinates():
    trials = _random_trials()
    files = build_report(trials, _manifest(trials, sweep_id="random"), None, log_params={"alpha"})
    expected = {
        "scatter_negative_x_ns_exponent.png",
        "scatter_window_x_ns_exponent.png",
        "scatter_window_x_negative.png",
        "metric_by_parameter.png",
        "parallel_coordinates.png",
        "curves.png",
        "epochs_run.png",
        "index.html",
    }
    assert set(files) == expected
    assert not any(name.startswith("heatmap_") for name in files)  # most of their cells would be empty
    _check_pngs(files)
    page = _check_html(files, "random")
    assert "alpha (log scale)" not in page  # axis labels are in the PNGs; the caption says it
    assert "Log axes for parameters sampled on a log scale" in page
    assert "hollow: trials ASHA stopped early" in page and "dashed, faint: stopped early by ASHA" in page


def test_the_by_parameter_plot_puts_a_loguniform_parameter_on_a_log_axis(monkeypatch):
    from sessrec.report import parameters, readings

    trials = _random_trials()
    frame = readings.normalise(trials, "recall_at_k")
    best = readings.best_trial(frame, {}, "recall_at_k")
    varying = ["alpha", "window"]
    drawn: list[str] = []
    real = parameters.Figure.subplots

    def spy(self, *args, **kwargs):  # records each panel's x scale after drawing, nothing replaced
        axes = real(self, *args, **kwargs)
        drawn.append(axes)
        return axes

    monkeypatch.setattr(parameters.Figure, "subplots", spy)
    parameters.by_parameter(frame, varying, "recall_at_k", "Recall@10", best, {"alpha"})
    parameters.by_parameter(frame, varying, "recall_at_k", "Recall@10", best, set())
    with_log, without = (axes.ravel() for axes in drawn)
    assert with_log[0].get_xscale() == "log" and with_log[1].get_xscale() == "linear"
    # Without the spec's word, a range over fewer than two decades stays linear.
    assert without[0].get_xscale() == "linear"


# ---------------------------------------------------------------------------------------------
# The page in a real browser: headless Chromium over the DevTools protocol


class _Chromium:
    """Headless Chromium (Debian's `chromium`) driven over the DevTools protocol on 127.0.0.1."""

    def __init__(self, folder):
        from servers import _SessionProcess, free_port

        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if binary is None:
            pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run does it)")
        self.port = free_port()
        cmd = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--remote-debugging-port={self.port}",
            "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={folder / 'profile'}",
            "--window-size=1280,1000",
            "about:blank",
        ]
        self.proc = _SessionProcess(cmd, dict(os.environ), folder / "chromium.log", cwd=str(folder))
        self.ws = None
        self.next_id = 0
        self.events: list[dict] = []

    def connect(self, timeout: float = 30.0) -> None:
        import websocket

        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=2) as response:
                    pages = [t for t in json.loads(response.read()) if t.get("type") == "page"]
                if pages:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or not self.proc.alive():
                raise RuntimeError(f"chromium's DevTools did not answer: {self.proc.log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            assert time.monotonic() < deadline, f"no {event}"
            self.events.append(json.loads(self.ws.recv()))

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        self.proc.kill()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["grid", "random"])
def test_the_report_page_loads_in_a_real_browser_with_every_image_and_no_console_error(tmp_path, kind):
    trials = _grid_trials() if kind == "grid" else _random_trials()
    best = _best_id(trials)
    files = build_report(
        trials, _manifest(trials, best, sweep_id=f"{kind}-sweep"), _best_metrics(best), log_params={"alpha"}
    )
    site = tmp_path / "report"
    site.mkdir()
    for name, content in files.items():
        (site / name).write_bytes(content)
    browser = _Chromium(tmp_path)
    try:
        browser.connect()
        for domain in ("Page", "Runtime", "Log"):
            browser.call(f"{domain}.enable")
        browser.call("Page.navigate", url=(site / "index.html").as_uri())
        browser.wait_for("Page.loadEventFired")
        images = json.loads(
            browser.call(
                "Runtime.evaluate",
                expression="JSON.stringify([...document.images].map("
                "i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]))",
                returnByValue=True,
            )["result"]["value"]
        )
        title = browser.call("Runtime.evaluate", expression="document.title", returnByValue=True)["result"]["value"]
        shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    finally:
        browser.close()
    assert title == f"Sweep {kind}-sweep"
    assert len(images) == sum(name.endswith(".png") for name in files)
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, alt
    errors = [
        e
        for e in browser.events
        if (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
        or e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert errors == []
    png = base64.b64decode(shot["data"])
    assert png.startswith(PNG_SIGNATURE)
    (tmp_path / f"screenshot-{kind}.png").write_bytes(png)  # for a look by eye: pytest --basetemp=DIR


def test_loguniform_parameters_are_read_from_the_stored_spec():
    from sessrec.report import log_scale_params

    text = (
        "name: r\ndataset: demo\nsearch: {method: random, num_samples: 4}\n"
        "space:\n  alpha: {loguniform: [0.01, 0.2]}\n  window: {randint: [2, 9]}\n"
    )
    assert log_scale_params(text) == {"alpha"}
    assert log_scale_params("not: [a spec") == set()
