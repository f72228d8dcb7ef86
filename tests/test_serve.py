"""`sessrec serve`: request validation and hot reload without Ray, then a real Ray Serve
subprocess on 127.0.0.1 answering real HTTP requests, good and bad, through a hot reload."""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import _SessionProcess, free_port

from sessrec import layout, pipeline, serving, storage
from sessrec.serving import BadRequest, ModelHolder

N = 50  # split pairs: small, the models only need to differ


def make_store(root: Path) -> str:
    store = str(root / "store")
    pipeline.synth("demo", store, n_sessions=600, n_items=200, seed=0)
    pipeline.fit_recommender("demo", store, "rec", "sr", {"last_n": 3}, 0, N, 10)
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_store(tmp_path_factory.mktemp("serve"))


def known_items(store: str, name: str = "rec") -> list[str]:
    holder = ModelHolder(name, store, 0)
    return [str(k) for k in holder.current.scorer.keys[:5]]


# -- without Ray -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b'{"session": ["a"', 400, "malformed JSON"),
        (b"\xff\xfe", 400, "not UTF-8"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"session": ["a"], "k": 0}', 400, "k must be from 1 to 1000"),
        (b'{"session": ["a"], "k": 1001}', 400, "k must be from 1 to 1000"),
        (b'{"session": ["a"], "k": "ten"}', 400, "whole number"),
        (b'{"session": ["a"], "k": true}', 400, "whole number"),
        (b'{"session": []}', 400, "empty"),
        (b'{"session": "a"}', 400, "JSON array"),
        (b'{"session": [1]}', 400, "strings"),
        (json.dumps({"session": ["a"] * 10_001}).encode(), 400, "at most 10,000"),
        (b'{"session": ["a"], "item": "a"}', 400, "either"),
        (b"{}", 400, "either"),
        (b'{"session": ["a"], "exclude": "all"}', 400, "exclude"),
        (b'{"session": ["a"], "colour": 1}', 400, "unknown field"),
        (b"[" * 100_000, 400, "malformed JSON"),
        (b" " * (serving.MAX_BODY_BYTES + 1), 413, "1,000,000"),
    ],
)
def test_bad_recommend_bodies(body: bytes, status: int, words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        serving.parse_recommend(body)
    assert caught.value.status == status and words in caught.value.message
    assert "\n" not in caught.value.message


def test_good_bodies_and_content_length() -> None:
    assert serving.parse_recommend(b'{"session": ["a", "b"]}') == serving.Query([["a", "b"]], 10, "session")
    assert serving.parse_recommend(b'{"item": "a", "k": 3.0}') == serving.Query([["a"]], 3, "item")
    batch = serving.parse_batch(b'{"sessions": [["a"], ["b"]], "k": 5, "exclude": "session"}')
    assert batch == serving.Query([["a"], ["b"]], 5, "session", "session", batch=True)
    for body, words in [
        (b'{"sessions": []}', "non-empty"),
        (b'{"sessions": [["a"], []]}', "session 1 is empty"),
        (json.dumps({"sessions": [["a"]] * 1001}).encode(), "at most 1,000"),
    ]:
        with pytest.raises(BadRequest, match=words):
            serving.parse_batch(body)
    serving.check_content_length(None)
    serving.check_content_length("1000000")
    for header, status in [("1000001", 413), ("-1", 400), ("lots", 400)]:
        with pytest.raises(BadRequest) as caught:
            serving.check_content_length(header)
        assert caught.value.status == status


def test_handle_routes_and_unknown_items(store: str) -> None:
    holder = ModelHolder("rec", store, 0)
    items = known_items(store)
    status, body = serving.handle(
        holder, "POST", "/recommend", json.dumps({"session": [*items[:2], "zz"], "k": 3}).encode()
    )
    assert status == 200 and len(body["items"]) == 3 and len(body["scores"]) == 3 and body["unknown"] == ["zz"]
    assert body["version"] == holder.current.version
    status, body = serving.handle(holder, "POST", "/recommend", b'{"session": ["zz", "yy"]}')
    assert status == 422 and body["unknown"] == ["zz", "yy"] and "no item is known" in body["error"]
    status, body = serving.handle(
        holder, "POST", "/recommend/batch", json.dumps({"sessions": [items[:1], ["zz"]]}).encode()
    )
    assert (
        status == 200
        and len(body["results"][0]["items"]) == 10
        and body["results"][1] == {"items": [], "scores": [], "unknown": ["zz"], "names": []}
    )
    status, body = serving.handle(holder, "POST", "/recommend", json.dumps({"item": items[0]}).encode())
    assert status == 400 and "no item mode" in body["error"]  # sr scores whole sessions
    assert serving.handle(holder, "GET", "/nowhere", b"")[0] == 404
    assert serving.handle(holder, "GET", "/recommend", b"")[0] == 405
    status, body = serving.handle(holder, "GET", "/model", b"")
    assert status == 200 and body["name"] == "rec" and body["params"]["model"] == "sr"
    assert body["provenance"]["split"] == {"seed": 0, "n": N} and len(body["provenance"]["dataset_sha256"]) == 64
    assert "validation" in body["provenance"]["metrics"] and body["load_seconds"] >= 0


def test_holder_swaps_new_versions_and_refuses_broken_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(tmp_path)
    holder = ModelHolder("rec", store, 0)
    first = holder.current.version
    assert not holder.check()
    pipeline.fit_recommender("demo", store, "rec", "transitions", {}, 0, N, 10, overwrite=True)
    assert holder.check() and holder.current.version != first and holder.current.scorer.name == "transitions"
    served = holder.current.version
    json_uri = storage.join(layout.model_dir(store, "rec"), layout.RECOMMENDER_FILE)
    meta = json.loads(storage.read_bytes(json_uri))
    storage.write_bytes(json_uri, json.dumps({**meta, "arrays_sha256": "0" * 64}).encode())
    assert not holder.check() and holder.current.version == served
    assert holder.refused is not None and "does not match the sha256" in holder.refused["error"]
    assert not holder.check()  # the refused version is not retried
    assert "refused rec version" in capsys.readouterr().err
    Path(json_uri).unlink()  # arrays without their description
    assert not holder.check() and holder.current.version == served


def test_serve_resolves_names_sweeps_and_uris(store: str) -> None:
    assert serving.resolve("rec", store).folder == layout.model_dir(store, "rec")
    folder = layout.model_dir(store, "rec")
    assert serving.resolve(folder + "/recommender.json", store).folder == folder
    with pytest.raises(Exception, match="no model or finished sweep"):
        serving.resolve("absent", store)


def test_names_are_attached_where_the_version_has_them(store: str) -> None:
    holder = ModelHolder("rec", store, 0)
    items = known_items(store)
    query = serving.parse_recommend(json.dumps({"session": items[:2], "k": 3}).encode())
    plain = serving.recommend(holder.current.scorer, query, "v")
    assert "names" not in plain and holder.current.names == {}  # a synthetic dataset has no names
    named = serving.recommend(holder.current.scorer, query, "v", {plain["items"][0]: "First"})
    assert named["items"] == plain["items"] and named["names"] == ["First", None, None]
    batch = serving.parse_batch(json.dumps({"sessions": [items[:1], ["zz"]], "k": 2}).encode())
    rows = serving.recommend(holder.current.scorer, batch, "v", {})["results"]
    assert len(rows[0]["names"]) == 2 and rows[1]["names"] == []


def test_a_served_model_answers_with_its_dataset_s_item_names(tmp_path: Path) -> None:
    from tests.test_item_names import _expected_names, _write_transactions

    store = str(tmp_path / "store")
    expected = _expected_names(_write_transactions(tmp_path / "tx.csv"))
    pipeline.prepare(str(tmp_path / "tx.csv"), "shop", store)
    pipeline.fit_recommender("shop", store, "shop-sr", "sr", {}, 0, 5, 10)
    holder = ModelHolder("shop-sr", store, 0)
    assert holder.current.info["named_items"] == len(expected)
    status, body = serving.handle(holder, "POST", "/recommend", json.dumps({"session": ["10000", "10001"]}).encode())
    assert status == 200 and body["items"]
    assert body["names"] == [expected.get(item) for item in body["items"]]


def test_ingress_choice_and_direct_ingress_env() -> None:
    assert serving.choose_ingress("auto", 1) == "direct" and serving.choose_ingress("auto", 3) == "proxy"
    assert serving.choose_ingress("proxy", 1) == "proxy" and serving.choose_ingress("direct", 1) == "direct"
    with pytest.raises(serving.SessrecError, match="--ingress proxy"):
        serving.choose_ingress("direct", 2)
    with pytest.raises(serving.SessrecError, match="must be one of"):
        serving.choose_ingress("fast", 1)
    env = serving.direct_ingress_env(8123)
    assert env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    # Ray Serve hands out ports from range(min, max): exactly the one asked for.
    assert (env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"], env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"]) == (
        "8123",
        "8124",
    )
    from ray.serve._private.node_port_manager import PortAllocator

    allocator = PortAllocator(8123, 8124, "HTTP", "node")
    assert allocator.allocate("replica-1") == 8123


def test_a_port_in_use_is_one_line_before_ray_starts() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(serving.SessrecError, match=f"cannot listen on 127.0.0.1:{port}"):
            serving._check_port("127.0.0.1", port)


# -- a real server, answering itself (direct ingress) and behind Ray Serve's proxy -----------------


class Server:
    def __init__(self, proc: _SessionProcess, port: int, store: str, ingress: str):
        self.proc, self.port, self.store, self.ingress = proc, port, store, ingress

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> tuple[int, Any, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            text = response.read().decode()
            return response.status, json.loads(text), text
        finally:
            connection.close()

    def post(self, path: str, data: Any) -> tuple[int, Any, str]:
        return self.request("POST", path, json.dumps(data).encode(), {"Content-Type": "application/json"})


@pytest.fixture(scope="module", params=["auto", "proxy"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``sessrec serve`` with the default ingress (one replica: it answers HTTP itself) and with
    ``--ingress proxy``; each with a store of its own, which the hot reload test changes."""
    port, scratch = free_port(), tmp_path_factory.mktemp("serve-run")
    store = make_store(scratch)
    env = {**os.environ, "HOME": str(scratch), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    command = [
        sys.executable,
        "-m",
        "sessrec",
        "--storage",
        store,
        "serve",
        "rec",
        "--port",
        str(port),
        "--reload-interval",
        "0.5",
        "--ingress",
        request.param,
    ]
    proc = _SessionProcess(command, env, scratch / "serve.log")
    running = Server(proc, port, store, request.param)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.alive(), Path(proc.log_path).read_text()[-3000:]
            try:
                ready = "serving rec on" in Path(proc.log_path).read_text()  # printed once serve.run returns
                if running.request("GET", "/healthz", timeout=2)[0] == 200 and ready:
                    break
            except (OSError, ValueError, http.client.HTTPException):
                pass
            assert time.monotonic() < deadline, Path(proc.log_path).read_text()[-3000:]
            time.sleep(0.5)
        via = "the replica answers directly" if request.param == "auto" else "Ray Serve's proxy"
        assert via in Path(proc.log_path).read_text()
        yield running
        # Ctrl-C stops it cleanly, with the exit status of an interrupt.
        os.kill(proc.pid, signal.SIGINT)
        assert proc.popen.wait(timeout=60) == 130, Path(proc.log_path).read_text()[-3000:]
    finally:
        proc.kill()


@pytest.mark.slow
def test_server_answers_good_and_bad_requests(server: Server) -> None:
    items = known_items(server.store)
    status, body, _ = server.post("/recommend", {"session": [items[0], items[1], "nope"], "k": 5})
    assert status == 200 and len(body["items"]) == 5 and body["unknown"] == ["nope"]
    status, body, _ = server.post("/recommend/batch", {"sessions": [items[:2], ["nope"]], "k": 2})
    assert status == 200 and len(body["results"][0]["items"]) == 2 and body["results"][1]["items"] == []
    assert server.request("GET", "/healthz")[0] == 200
    status, body, _ = server.request("GET", "/model")
    assert status == 200 and body["name"] == "rec" and body["provenance"]["split"] == {"seed": 0, "n": N}
    big = b'{"session": ["' + b"a" * 1_100_000 + b'"]}'
    bad: list[tuple[str, bytes, dict[str, str], int]] = [
        ("/recommend", b'{"session": [', {}, 400),
        ("/recommend", b'{"session": ["a"], "k": 0}', {}, 400),
        ("/recommend", b'{"session": ["a"], "k": 1001}', {}, 400),
        ("/recommend", b'{"session": []}', {}, 400),
        ("/recommend", json.dumps({"session": [items[0]] * 10_001}).encode(), {}, 400),
        ("/recommend", b'{"session": ["nope", "nada"]}', {}, 422),
        ("/recommend", big, {}, 413),  # by Content-Length
        ("/recommend/batch", b'{"sessions": [[]]}', {}, 400),
        ("/elsewhere", b"{}", {}, 404),
    ]
    for path, data, headers, expected in bad:
        status, body, text = server.request("POST", path, data, headers)
        assert status == expected, (path, data[:60], text)
        assert isinstance(body.get("error"), str) and "\n" not in text.strip(), text
    # A body over 1 MB without a Content-Length (chunked): counted as it is read.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request(
        "POST", "/recommend", body=iter([big[i : i + 65536] for i in range(0, len(big), 65536)]), encode_chunked=True
    )
    response = connection.getresponse()
    assert response.status == 413 and "error" in json.loads(response.read())
    connection.close()
    assert server.request("GET", "/healthz")[0] == 200  # still up


@pytest.mark.slow
def test_hot_reload_under_load(server: Server) -> None:
    store = server.store
    items = known_items(store)
    first = server.request("GET", "/model")[1]
    answers: list[tuple[int, str]] = []
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                status, body, text = server.post("/recommend", {"session": items[:3], "k": 5})
                (answers if status == 200 else failures).append((status, body["version"]) if status == 200 else text)
            except Exception as exc:  # any failure counts
                failures.append(repr(exc))

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)
        pipeline.fit_recommender("demo", store, "rec", "transitions", {}, 0, N, 10, overwrite=True)
        deadline = time.monotonic() + 30
        while server.request("GET", "/model")[1]["version"] == first["version"]:
            assert time.monotonic() < deadline, "the new model was not picked up"
            time.sleep(0.2)
        time.sleep(1.0)
        new = server.request("GET", "/model")[1]
        assert new["params"]["model"] == "transitions" and new["reloads"] == 1
        # A half-written version: its description names other arrays. Refused; the new model stays.
        json_uri = storage.join(layout.model_dir(store, "rec"), layout.RECOMMENDER_FILE)
        meta = json.loads(storage.read_bytes(json_uri))
        storage.write_bytes(json_uri, json.dumps({**meta, "arrays_sha256": "0" * 64}).encode())
        deadline = time.monotonic() + 30
        while server.request("GET", "/model")[1]["refused"] is None:
            assert time.monotonic() < deadline, "the broken model was not noticed"
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join(timeout=30)
    after = server.request("GET", "/model")[1]
    assert after["version"] == new["version"] and "does not match the sha256" in after["refused"]["error"]
    assert not failures, failures[:5]
    versions = [version for _, version in answers]
    assert first["version"] in versions and new["version"] in versions and versions[-1] == new["version"]
    switched = versions.index(new["version"])
    assert set(versions[switched:]) == {new["version"]}  # once switched, never back
    assert "refused rec version" in Path(server.proc.log_path).read_text()
