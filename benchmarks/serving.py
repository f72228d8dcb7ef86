"""`sessrec serve` under load: throughput and p50/p99 latency over HTTP at concurrency 1, 8 and 32
beside the same recommender called in-process, failed requests during a hot reload under load,
and the RSS of one replica serving a 100k-item synthetic catalogue.

The server is a real `sessrec serve` subprocess (embedded Ray, Ray Serve, one replica) on
127.0.0.1, with the default ingress (direct: the replica answers HTTP itself) and, for comparison,
with Serve's HTTP proxy in front (`--ingress proxy`). The load generator is bounded (fixed duration
per level, at most MAX_REQUESTS) and closed-loop: each of `concurrency` threads of this process
holds one keep-alive connection (a light HTTP/1.1 client, :class:`Connection`) and sends its next
request when the last one is answered. It shares the server's CPUs; its own CPU time per request
is reported, as is the CPU time per request of each of the server's processes (where a request's
time goes), and the load average. Run it alone for figures to quote:

    .venv/bin/python -m benchmarks.serving    # about 3 minutes: 4 s per level (--seconds)
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
PROCESS_KINDS = ((b"ServeReplica", "replica"), (b"ProxyActor", "Serve proxy"), (b"ServeController", "Serve controller"))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


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
    def __init__(self, store: str, model: str, log: Path, reload_interval: float = 1.0, ingress: str = "auto"):
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
            "--ingress",
            ingress,
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

    def processes(self) -> dict[int, str]:
        """The server's processes (its session): pid -> what it is."""
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.getsid(int(entry)) != self.proc.pid:
                    continue
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            found[int(entry)] = next((label for key, label in PROCESS_KINDS if key in cmdline), "other Ray and driver")
        return found

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) used so far by the server's processes, by kind."""
        used: dict[str, float] = {}
        for pid, kind in self.processes().items():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            used[kind] = used.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        return used

    def replica_rss_mb(self) -> float:
        """VmRSS of the Serve replica process in this server's session."""
        for pid, kind in self.processes().items():
            if kind != "replica":
                continue
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
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


class Connection:
    """A light keep-alive HTTP/1.1 client for the load: one prepared request written with one
    send, the answer read by its Content-Length (http.client parses headers with the email
    package, which cost the generator as much CPU as a third of the replica's)."""

    def __init__(self, port: int, timeout: float = 30):
        self.port, self.timeout = port, timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def post(self, path: str, body: bytes) -> tuple[int, Any]:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        self.sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        header, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = dict(line.split(":", 1) for line in lines[1:])
        length = next((int(v) for k, v in fields.items() if k.strip().lower() == "content-length"), None)
        if length is None:
            raise ValueError(f"an answer without Content-Length: {header[:200]!r}")
        while len(self.buffer) < length:
            self._read()
        payload, self.buffer = self.buffer[:length], self.buffer[length:]
        if any(k.strip().lower() == "connection" and v.strip().lower() == "close" for k, v in fields.items()):
            self.close()
        return status, json.loads(payload)

    def _read(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""


def load(
    port: int, bodies: list[bytes], concurrency: int, seconds: float, server: Server | None = None
) -> dict[str, Any]:
    """Requests from ``concurrency`` threads for ``seconds`` (at most MAX_REQUESTS in all); with
    ``server``, also the CPU time per request of its processes and of this load generator."""
    latencies: list[float] = []
    failures: list[str] = []
    versions: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker(offset: int) -> None:
        connection = Connection(port)
        i = offset
        while time.perf_counter() < deadline and len(latencies) + len(failures) < MAX_REQUESTS:
            body = bodies[i % len(bodies)]
            i += concurrency
            started = time.perf_counter()
            try:
                status, answer = connection.post("/recommend", body)
                ok = status == 200
            except Exception as exc:  # counted, the connection renewed
                status, answer, ok = 0, {"error": repr(exc)}, False
                connection.close()
            took = time.perf_counter() - started
            with lock:
                if ok:
                    latencies.append(took)
                    versions.append(answer["version"])
                else:
                    failures.append(f"{status} {answer}")
        connection.close()

    cpu_before = server.cpu_seconds() if server else {}
    client_before = time.process_time()
    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    answered = max(len(latencies) + len(failures), 1)
    cpu_ms: dict[str, float] = {"load generator": round((time.process_time() - client_before) * 1000 / answered, 3)}
    if server:
        for kind, seconds_used in server.cpu_seconds().items():
            cpu_ms[kind] = round((seconds_used - cpu_before.get(kind, 0.0)) * 1000 / answered, 3)
    return {
        **summary(latencies, wall),
        "concurrency": concurrency,
        "failed": len(failures),
        "failures": failures[:3],
        "versions": list(dict.fromkeys(versions)),
        "cpu_ms_per_request": cpu_ms,
        "load_average": load_average(),
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


def cpu_cell(result: dict[str, Any]) -> str:
    """The CPU ms per request of the server's replica and proxy, and of the load generator."""
    cpu = result.get("cpu_ms_per_request", {})
    parts = [f"{label} {cpu[key]:.2f}" for key, label in CPU_COLUMNS if cpu.get(key, 0) >= 0.005]
    return ", ".join(parts)


CPU_COLUMNS = (("replica", "replica"), ("Serve proxy", "proxy"), ("load generator", "client"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0, help="Seconds of load per level.")
    parser.add_argument("--big-items", type=int, default=100_000, help="Catalogue of the memory measurement.")
    parser.add_argument(
        "--ingress",
        default="auto,proxy",
        help="Comma-separated `sessrec serve --ingress` values measured at each level; the first also "
        "serves the hot reload and the big catalogue (auto is direct ingress for one replica).",
    )
    args = parser.parse_args()
    modes = [mode.strip() for mode in args.ingress.split(",") if mode.strip()]
    load_start = load_average()
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
    levels: dict[str, list[dict[str, Any]]] = {}
    reload_result: dict[str, Any] = {}
    for n, mode in enumerate(modes):
        server = Server(store, "rec", logs / f"serve-{mode}.log", ingress=mode)
        try:
            load(server.port, bodies, 1, 1.0)  # warm-up
            levels[mode] = [load(server.port, bodies, c, args.seconds, server) for c in LEVELS]
            if n == 0:
                # Hot reload under load: replace the model while 8 clients send requests.
                def replace() -> None:
                    time.sleep(args.seconds / 3)
                    pipeline.fit_recommender("data", store, "rec", "transitions", {}, 0, 1000, 10, overwrite=True)

                replacer = threading.Thread(target=replace)
                replacer.start()
                reload_result = load(server.port, bodies, 8, args.seconds * 2, server)
                replacer.join()
        finally:
            server.stop()
        if n == 0:  # the other modes serve the sr model again
            pipeline.fit_recommender("data", store, "rec", "sr", {"last_n": 3}, 0, 1000, 10, overwrite=True)

    # The RSS of one replica serving a 100k-item synthetic catalogue.
    big = synth_sessions(n_sessions=args.big_items * 2, n_items=args.big_items, n_clusters=1000, mean_length=8, seed=0)
    pipeline.save_dataset(big, "big", store, {"benchmark": "serving"}, overwrite=True)
    pipeline.fit_recommender("big", store, "big", "sr", {"last_n": 3}, 0, 1000, 10)
    big_bodies = [json.dumps({"session": s[:-1], "k": 10}).encode() for s in big.to_lists()[:500]]
    server = Server(store, "big", logs / "serve-big.log", ingress=modes[0])
    try:
        big_load = load(server.port, big_bodies, 8, args.seconds, server)
        rss = server.replica_rss_mb()
    finally:
        server.stop()
    load_end = load_average()

    first = levels[modes[0]]
    c8 = next(level for level in first if level["concurrency"] == 8)
    c1 = first[0]
    label = {"auto": "direct ingress", "direct": "direct ingress", "proxy": "Serve HTTP proxy"}
    rows = [
        f"| HTTP, {label.get(mode, mode)} | {r['concurrency']} | {r['requests']} | {r['throughput_per_s']} "
        f"| {r['p50_ms']} | {r['p99_ms']} | {r['failed']} | {cpu_cell(r)} | {r['load_average'].split('/')[0]} |"
        for mode in modes
        for r in levels[mode]
    ]
    lines = [
        f"Data: {data_label()}; recommender sr (last_n 3) fitted on the training split; one replica; "
        f"{args.seconds:g} s per level; a closed-loop load generator (one keep-alive connection per client "
        f"thread, a light HTTP/1.1 client) shares the server's CPUs ({os.cpu_count()} here, shared with other "
        f"work). Load average (1/5/15 min) {load_start} at the start, {load_end} at the end.",
        "",
        "CPU ms per request: CPU time of the replica, Serve's proxy and the load generator over the level, "
        "divided by the requests answered.",
        "",
        "| where | concurrency | requests | throughput / s | p50 ms | p99 ms | failed | CPU ms per request "
        "| load avg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| in-process (serving.handle) | 1 | {local['requests']} | {local['throughput_per_s']} | {local['p50_ms']} "
        f"| {local['p99_ms']} | 0 | | |",
        *rows,
        f"| HTTP during a hot reload, {label.get(modes[0], modes[0])} | 8 | {reload_result['requests']} "
        f"| {reload_result['throughput_per_s']} | {reload_result['p50_ms']} | {reload_result['p99_ms']} "
        f"| {reload_result['failed']} | {cpu_cell(reload_result)} | {reload_result['load_average'].split('/')[0]} |",
        f"| HTTP, {args.big_items:,}-item catalogue, {label.get(modes[0], modes[0])} | 8 | {big_load['requests']} "
        f"| {big_load['throughput_per_s']} | {big_load['p50_ms']} | {big_load['p99_ms']} | {big_load['failed']} "
        f"| {cpu_cell(big_load)} | {big_load['load_average'].split('/')[0]} |",
        "",
        f"- p99 at concurrency 8 ({label.get(modes[0], modes[0])}): {c8['p99_ms']} ms (target < 25 ms)",
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
        {
            "load_average": {"start": load_start, "end": load_end},
            "in_process": local,
            "levels": levels,
            "hot_reload": reload_result,
            "big": big_load,
            "replica_rss_mb": rss,
        },
    )


if __name__ == "__main__":
    main()
