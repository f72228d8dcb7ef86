"""Storage and the laptop workflow against a real signing S3 server (SeaweedFS on loopback)."""

import json
import os
import uuid

import pytest

from sessrec import storage
from sessrec.errors import NotFoundError, StorageError
from tests.helpers import assert_one_line_error, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def root(s3_env):
    storage._s3_client.cache_clear()
    return f"s3://{s3_env.bucket}/{uuid.uuid4().hex[:8]}"


def test_round_trip_listing_and_exclusive_create(root):
    storage.write_bytes(f"{root}/a/one.bin", b"1")
    storage.write_bytes(f"{root}/a/b/two.bin", "ünï".encode())
    assert storage.read_bytes(f"{root}/a/one.bin") == b"1"
    assert storage.read_text(f"{root}/a/b/two.bin") == "ünï"
    assert storage.exists(f"{root}/a/one.bin") and not storage.exists(f"{root}/a/none")
    assert storage.list_children(f"{root}/a") == ["b", "one.bin"]
    assert sorted(storage.walk_files(f"{root}/a")) == ["b/two.bin", "one.bin"]
    assert sorted(storage.walk_file_sizes(f"{root}/a")) == [("b/two.bin", len("ünï".encode())), ("one.bin", 1)]
    assert storage.create_exclusive(f"{root}/claim", b"first")
    assert not storage.create_exclusive(f"{root}/claim", b"second")
    assert storage.read_bytes(f"{root}/claim") == b"first"
    with pytest.raises(NotFoundError):
        storage.read_bytes(f"{root}/missing")
    storage.delete(f"{root}/a/one.bin")
    storage.delete(f"{root}/a/one.bin")  # gone already: nothing to do
    assert storage.list_children(f"{root}/a") == ["b"]


def test_storage_errors_are_one_line(s3_env, monkeypatch):
    storage._s3_client.cache_clear()
    with pytest.raises(NotFoundError, match="bucket does not exist"):
        storage.read_bytes("s3://no-such-bucket-here/x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    storage._s3_client.cache_clear()
    with pytest.raises(StorageError, match="refused access"):
        storage.read_bytes(f"s3://{s3_env.bucket}/x")
    storage._s3_client.cache_clear()


def test_laptop_workflow_on_s3(s3_env, root, tmp_path):
    env = {**os.environ, "SESSREC_STORAGE": root}
    csv = "InvoiceNo,StockCode,InvoiceDate,CustomerID\n" + "".join(
        f"{i},{code},2010-12-0{1 + i % 5} 08:00,{17000 + i // 4}\n"
        for i, code in enumerate(["10001", "10002", "10003", "10001"] * 30)
    )
    s3_env.client().put_object(Bucket=s3_env.bucket, Key="raw/tx.csv", Body=csv.encode())
    prepared = run_cli(
        "data", "prepare", f"s3://{s3_env.bucket}/raw/tx.csv", "--name", "shop", "--json", cwd=tmp_path, env=env
    )
    assert prepared.returncode == 0, prepared.stderr
    assert json.loads(prepared.stdout)["sessions"] == 30

    assert run_cli("data", "synth", "--name", "demo", "--sessions", "400", cwd=tmp_path, env=env).returncode == 0
    assert storage.exists(f"{root}/datasets/demo/sessions.parquet") and storage.exists(
        f"{root}/datasets/demo/manifest.json"
    )
    trained = run_cli(
        "train",
        "demo",
        "--name",
        "m",
        "--n",
        "80",
        "--epochs",
        "2",
        "--vector-size",
        "8",
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert trained.returncode == 0, trained.stderr
    recs = run_cli("recommend", "I000001", "--embeddings", "m", "-k", "3", "--json", cwd=tmp_path, env=env)
    assert len(json.loads(recs.stdout)["I000001"]) == 3
    again = run_cli("data", "synth", "--name", "demo", "--sessions", "500", cwd=tmp_path, env=env)
    assert_one_line_error(again, "already exists")


def test_unreachable_and_refusing_s3_are_one_line(s3_env, root, tmp_path):
    wrong_key = {**os.environ, "SESSREC_STORAGE": root, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    assert_one_line_error(run_cli("data", "synth", "--name", "demo", cwd=tmp_path, env=wrong_key), "refused access")
    nowhere = {**os.environ, "SESSREC_STORAGE": root, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    result = run_cli("data", "stats", "demo", cwd=tmp_path, env=nowhere)
    assert_one_line_error(result, "cannot reach S3 at http://127.0.0.1:9")
    assert s3_env.secret_key not in result.stderr + result.stdout
