"""`sessrec serve` under load: throughput and p50/p99 latency over HTTP at concurrency 1, 8 and 32
beside the same recommender called in-process, failed requests during a hot reload under load,
and the RSS of one replica serving a 100k-item synthetic catalogue.

The server is a real `sessrec serve` subprocess (embedded Ray, Ray Serve, one replica) on
127.0.0.1; the load generator is bounded (fixed duration per level, at most MAX_REQUESTS) and runs
in threads of this process, on the same CPUs as the server.

    .venv/bin/python -m benchmarks.serving [--seconds 5]
    # writes benchmarks/out/serving.{md,json}
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import data_label, data_sessions, scratch_dir, write_report
from sessrec import pipeline, serving
from sessrec.core.synth import synth_sessions

MAX_REQUESTS = 50_000
LEVELS = (1, 8, 32)


def free_port() -> int:
    for _ in range(200):
        port = random.randrange(30000, 32000)  # below the ephemeral range, above Ray's worker ports
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


class Server:
    def __init__(self, store: str, model: str, log: Path, reload_interval: float = 1.0):
        self.port = free_port()
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(log.parent)}
        command = [
            sys.executable,
            "-m",
            "sessrec",
            "--storage",
            store,
            "serve",
            model,
            "--port",
            str(self.port),
            "--reload-interval",
            str(reload_interval),
        ]
        self.proc = subprocess.Popen(
            command, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 180
        while True:
            try:
                if request(self.port, "GET", "/healthz")[0] == 200:
                    return
            except (OSError, http.client.HTTPException, ValueError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sessrec serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)

    def replica_rss_mb(self) -> float:
        """VmRSS of the Serve replica process in this server's session."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.getsid(int(entry)) != self.proc.pid:
                    continue
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                if b"ServeReplica" not in cmdline:
                    continue
                for line in Path(f"/proc/{entry}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
            except OSError:
                continue
        return float("nan")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout=60)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def request(
    port: int, method: str, path: str, body: bytes | None = None, connection: http.client.HTTPConnection | None = None
) -> tuple[int, Any]:
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        if own:
            connection.close()


def load(port: int, bodies: list[bytes], concurrency: int, seconds: float) -> dict[str, Any]:
    """Requests from ``concurrency`` threads for ``seconds`` (at most MAX_REQUESTS in all)."""
    latencies: list[float] = []
    failures: list[str] = []
    versions: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = offset
        while time.perf_counter() < deadline and len(latencies) + len(failures) < MAX_REQUESTS:
            body = bodies[i % len(bodies)]
            i += concurrency
            started = time.perf_counter()
            try:
                status, answer = request(port, "POST", "/recommend", body, connection)
                ok = status == 200
            except Exception as exc:  # counted, the connection renewed
                status, answer, ok = 0, {"error": repr(exc)}, False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            took = time.perf_counter() - started
            with lock:
                if ok:
                    latencies.append(took)
                    versions.append(answer["version"])
                else:
                    failures.append(f"{status} {answer}")
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        **summary(latencies, wall),
        "concurrency": concurrency,
        "failed": len(failures),
        "failures": failures[:3],
        "versions": list(dict.fromkeys(versions)),
    }


def summary(latencies: list[float], wall: float) -> dict[str, Any]:
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "requests": len(latencies),
        "throughput_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def in_process(holder: serving.ModelHolder, bodies: list[bytes], seconds: float) -> dict[str, Any]:
    """The same requests through serving.handle (JSON parsing, validation, scoring) in this process."""
    latencies: list[float] = []
    started = time.perf_counter()
    i = 0
    while time.perf_counter() - started < seconds and i < MAX_REQUESTS:
        t = time.perf_counter()
        status, _ = serving.handle(holder, "POST", "/recommend", bodies[i % len(bodies)])
        assert status == 200
        latencies.append(time.perf_counter() - t)
        i += 1
    return {**summary(latencies, time.perf_counter() - started), "concurrency": 1}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0, help="Seconds of load per level.")
    parser.add_argument("--big-items", type=int, default=100_000, help="Catalogue of the memory measurement.")
    args = parser.parse_args()
    store = scratch_dir("sessrec-serving-")
    logs = Path(scratch_dir("sessrec-serving-logs-"))
    sessions = data_sessions()
    pipeline.save_dataset(sessions, "data", store, {"benchmark": "serving"}, overwrite=True)
    pipeline.fit_recommender("data", store, "rec", "sr", {"last_n": 3}, 0, 1000, 10)
    queries = [s[:-1] for s in sessions.to_lists() if len(s) > 1]
    random.Random(0).shuffle(queries)
    bodies = [json.dumps({"session": q[-serving.MAX_SESSION_ITEMS :], "k": 10}).encode() for q in queries[:2000]]

    holder = serving.ModelHolder("rec", store, 0)
    local = in_process(holder, bodies, args.seconds)
    server = Server(store, "rec", logs / "serve.log")
    try:
        load(server.port, bodies, 1, 1.0)  # warm-up
        levels = [load(server.port, bodies, c, args.seconds) for c in LEVELS]
        # Hot reload under load: replace the model while 8 clients send requests.
        reload_result: dict[str, Any] = {}

        def replace() -> None:
            time.sleep(args.seconds / 3)
            pipeline.fit_recommender("data", store, "rec", "transitions", {}, 0, 1000, 10, overwrite=True)

        replacer = threading.Thread(target=replace)
        replacer.start()
        reload_result = load(server.port, bodies, 8, args.seconds * 2)
        replacer.join()
    finally:
        server.stop()

    # The RSS of one replica serving a 100k-item synthetic catalogue.
    big = synth_sessions(n_sessions=args.big_items * 2, n_items=args.big_items, n_clusters=1000, mean_length=8, seed=0)
    pipeline.save_dataset(big, "big", store, {"benchmark": "serving"}, overwrite=True)
    pipeline.fit_recommender("big", store, "big", "sr", {"last_n": 3}, 0, 1000, 10)
    big_bodies = [json.dumps({"session": s[:-1], "k": 10}).encode() for s in big.to_lists()[:500]]
    server = Server(store, "big", logs / "serve-big.log")
    try:
        big_load = load(server.port, big_bodies, 8, args.seconds)
        rss = server.replica_rss_mb()
    finally:
        server.stop()

    c8 = next(level for level in levels if level["concurrency"] == 8)
    c1 = levels[0]
    lines = [
        f"Data: {data_label()}; recommender sr (last_n 3) fitted on the training split; one replica; "
        f"{args.seconds:g} s per level; client threads share the server's CPUs ({os.cpu_count()} here, shared with "
        "other work).",
        "",
        "| where | concurrency | requests | throughput / s | p50 ms | p99 ms | failed |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| in-process (serving.handle) | 1 | {local['requests']} | {local['throughput_per_s']} | {local['p50_ms']} "
        f"| {local['p99_ms']} | 0 |",
        *(
            f"| HTTP (Ray Serve) | {r['concurrency']} | {r['requests']} | {r['throughput_per_s']} | {r['p50_ms']} "
            f"| {r['p99_ms']} | {r['failed']} |"
            for r in levels
        ),
        f"| HTTP during a hot reload | 8 | {reload_result['requests']} | {reload_result['throughput_per_s']} "
        f"| {reload_result['p50_ms']} | {reload_result['p99_ms']} | {reload_result['failed']} |",
        f"| HTTP, {args.big_items:,}-item catalogue | 8 | {big_load['requests']} | {big_load['throughput_per_s']} "
        f"| {big_load['p50_ms']} | {big_load['p99_ms']} | {big_load['failed']} |",
        "",
        f"- p99 at concurrency 8: {c8['p99_ms']} ms (target < 25 ms)",
        f"- serving overhead at p50 (HTTP at concurrency 1 - in-process): {c1['p50_ms'] - local['p50_ms']:.2f} ms "
        "(target < 5 ms)",
        f"- failed requests during the hot reload: {reload_result['failed']} (target 0); versions answered in order: "
        f"{', '.join(reload_result['versions'])}",
        f"- RSS of one replica, {args.big_items:,}-item catalogue (sr): {rss:.0f} MB",
    ]
    write_report(
        "serving",
        "Serving: HTTP vs in-process, hot reload, replica memory",
        lines,
        {"in_process": local, "levels": levels, "hot_reload": reload_result, "big": big_load, "replica_rss_mb": rss},
    )


if __name__ == "__main__":
    main()
