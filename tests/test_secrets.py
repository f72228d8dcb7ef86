"""The planted-secret search: recognisable S3 keys and Ray tokens in every place sessrec takes
credentials from (environment, settings file, token file), then every output searched for them:
stdout and stderr of each command (normal runs and error paths: wrong credentials, unreachable
S3 and Ray, bad specs and settings), `--json` output, every file written to storage, and the
rendered Kubernetes manifests (`sessrec k8s render`, `helm template`). The submit path, with a
real cluster, is searched in tests/test_submit.py."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_tools import CHART, Helm, helm_fixture  # noqa: F401  (the `helm` fixture)
from servers import AWS_CONFLICTING_VARS, SeaweedS3

from sessrec.k8s import defaults
from tests.helpers import TWO_TRIAL_SWEEP, run_cli

pytestmark = pytest.mark.slow

PLANTED = uuid.uuid4().hex[:12]
SECRETS = {
    "AWS_SECRET_ACCESS_KEY": f"sessrec-planted-secret-{PLANTED}",
    "AWS_ACCESS_KEY_ID": f"SESSRECPLANTEDKEY{PLANTED.upper()}",
    "AWS_SESSION_TOKEN": f"sessrec-planted-session-{PLANTED}",
    "RAY_AUTH_TOKEN": f"sessrec-planted-token-{PLANTED}",
}
SETTINGS_TOKEN = f"sessrec-planted-settings-token-{PLANTED}"
FILE_TOKEN = f"sessrec-planted-file-token-{PLANTED}"
CREDENTIAL_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "RAY_AUTH_TOKEN")
S3_DOWN = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
NO_RAY = "http://127.0.0.1:9"

# name -> (arguments, environment changes, whether it succeeds); {s3} is an s3:// root on the
# test server. Those IN_FIXTURE run in the module's fixture: the others read what they wrote.
COMMANDS: dict[str, tuple[list[str], dict[str, str], bool | None]] = {
    "data synth": (
        ["data", "synth", "--name", "demo", "--sessions", "400", "--items", "150", "--clusters", "5"],
        {},
        True,
    ),
    "data prepare": (["data", "prepare", "tx.jsonl", "--name", "shop", "--json"], {}, True),
    "data stats": (["data", "stats", "demo", "--json"], {}, True),
    "baseline": (["baseline", "demo", "--n", "20", "--json"], {}, True),
    "train": (
        ["train", "demo", "--name", "m", "--n", "20", "--epochs", "1", "--vector-size", "8", "--export", "word2vec"],
        {},
        True,
    ),
    "recommend": (["recommend", "I000001", "--embeddings", "m", "--json"], {}, True),
    "tune run": (["tune", "run", "spec.yaml", "--sweep-id", "s1", "--num-cpus", "2", "--json"], {}, True),
    "tune run --dry-run": (["tune", "run", "spec.yaml", "--dry-run"], {}, True),
    "results list": (["results", "list", "--json"], {}, True),
    "results show": (["results", "show", "s1"], {}, True),
    "results best": (["results", "best", "s1", "--json"], {}, True),
    "results fetch": (["results", "fetch", "s1", "--to", "got"], {}, True),
    "report": (["report", "s1", "--to", "report"], {}, True),
    "tune resume (finished sweep)": (["tune", "resume", "s1"], {}, None),
    "data synth on S3": (
        ["--storage", "{s3}", "data", "synth", "--name", "demo", "--sessions", "300", "--json"],
        {"s3": "right"},
        True,
    ),
    "results list on S3": (["--storage", "{s3}", "results", "list", "--json"], {"s3": "right"}, True),
    "S3 refuses the credentials": (["--storage", "{s3}", "data", "stats", "demo"], {"s3": "planted"}, False),
    "S3 unreachable": (["--storage", "s3://sessrec-test/x", "data", "stats", "demo"], S3_DOWN, False),
    "S3 unreachable, train": (["--storage", "s3://sessrec-test/x", "train", "demo", "--name", "m"], S3_DOWN, False),
    "Ray unreachable: tune run": (["tune", "run", "spec.yaml", "--address", "127.0.0.1:1"], {}, False),
    "Ray unreachable: jobs list": (["jobs", "list", "--address", NO_RAY], {}, False),
    "Ray unreachable: jobs list, token from settings": (
        ["jobs", "list", "--address", NO_RAY],
        {"RAY_AUTH_TOKEN": ""},
        False,
    ),
    "Ray unreachable: jobs list, token file": (
        ["jobs", "list", "--address", NO_RAY],
        {"RAY_AUTH_TOKEN": "", "RAY_AUTH_TOKEN_PATH": "token"},
        False,
    ),
    "Ray unreachable: submit tune": (
        ["--storage", "{s3}", "submit", "tune", "spec.yaml", "--address", NO_RAY],
        {"s3": "right"},
        False,
    ),
    "Ray unreachable: submit tune --forward-s3-env": (
        ["--storage", "{s3}", "submit", "tune", "spec.yaml", "--address", NO_RAY, "--forward-s3-env", "--json"],
        {"s3": "right"},
        False,
    ),
    "jobs status, wrong token": (
        ["jobs", "status", "x", "--address", NO_RAY],
        {"RAY_AUTH_TOKEN": "not-the-token"},
        False,
    ),
    "bad spec": (["tune", "run", "bad.yaml"], {}, False),
    "settings file with an unknown secret key": (
        ["data", "stats", "demo"],
        {"SESSREC_CONFIG": "unknown-key.yaml"},
        False,
    ),
    "settings file that is not YAML": (["data", "stats", "demo"], {"SESSREC_CONFIG": "broken.yaml"}, False),
    "usage error": (["train", "demo", "--name", "m2", "--epochs", "many"], {}, False),
    "unknown item": (["recommend", "no-such-item", "--embeddings", "m"], {}, False),
}
IN_FIXTURE = ("data synth", "train", "tune run")


def _secrets(s3: SeaweedS3) -> list[str]:
    return [*SECRETS.values(), SETTINGS_TOKEN, FILE_TOKEN, s3.secret_key]


def _found(text: str, secrets: list[str]) -> list[str]:
    return [secret for secret in secrets if secret in text]


@pytest.fixture(scope="module")
def work(tmp_path_factory, s3: SeaweedS3) -> tuple[Path, dict[str, str], dict[str, Any]]:
    """A user's folder with every credential planted: environment, settings file, token file."""
    folder = tmp_path_factory.mktemp("secrets")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "RAY_", "SESSREC_")) and k not in AWS_CONFLICTING_VARS
    }
    env.update(SECRETS)
    env.update(
        HOME=str(folder),
        SESSREC_STORAGE=str(folder / "store"),
        SESSREC_CONFIG=str(folder / "settings.yaml"),
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
    )
    (folder / "settings.yaml").write_text(
        yaml.safe_dump({"storage": str(folder / "store"), "ray_auth_token": SETTINGS_TOKEN})
    )
    (folder / "unknown-key.yaml").write_text(
        yaml.safe_dump({"aws_secret_access_key": SECRETS["AWS_SECRET_ACCESS_KEY"]})
    )
    (folder / "broken.yaml").write_text(f"ray_auth_token: {SETTINGS_TOKEN}\nstorage: [\n")
    (folder / "token").write_text(FILE_TOKEN + "\n")
    (folder / "tx.jsonl").write_text('["a", "b", "c"]\n["b", "c", "d"]\n')
    (folder / "spec.yaml").write_text(yaml.safe_dump(TWO_TRIAL_SWEEP))
    (folder / "bad.yaml").write_text(yaml.safe_dump({**TWO_TRIAL_SWEEP, "space": {"window": [0]}}))
    recorded = {name: run_cli(*COMMANDS[name][0], cwd=folder, env=env) for name in IN_FIXTURE}
    return folder, env, recorded


def _env_for(changes: dict[str, str], base: dict[str, str], s3: SeaweedS3, folder: Path) -> dict[str, str]:
    env = dict(base)
    target = changes.get("s3")
    if target:  # the real S3 server: its own keys, or the planted ones (which it refuses)
        env.update(s3.env())
        if target == "right":
            del env["AWS_SESSION_TOKEN"]  # the server's keys come without one
        if target == "planted":
            env.update({k: SECRETS[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    for key, value in changes.items():
        if key != "s3":
            env[key] = str(folder / value) if key in ("SESSREC_CONFIG", "RAY_AUTH_TOKEN_PATH") else value
    return env


@pytest.mark.parametrize("name", COMMANDS)
def test_no_command_prints_or_stores_a_secret(work, s3: SeaweedS3, name: str) -> None:
    folder, base, recorded = work
    args, changes, succeeds = COMMANDS[name]
    if not s3.running:  # a fault test in the same session may have stopped it
        s3.start()
    prefix = f"secrets-{PLANTED}"
    args = [arg.replace("{s3}", f"s3://{s3.bucket}/{prefix}") for arg in args]
    result = recorded.get(name) or run_cli(*args, cwd=folder, env=_env_for(changes, base, s3, folder))
    if succeeds is not None:
        assert (result.returncode == 0) == succeeds, result.stdout[-2000:] + result.stderr[-2000:]
    secrets = _secrets(s3)
    assert not _found(result.stdout + result.stderr, secrets), f"{name} printed a secret"
    stored = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    stored.update({key: s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read() for key in _keys(s3, prefix)})
    planted = {"settings.yaml", "unknown-key.yaml", "broken.yaml", "token"}  # where the test put them
    leaks = {
        path: found
        for path, data in stored.items()
        if path not in planted and (found := _found(data.decode("latin-1"), secrets))
    }
    assert not leaks, f"after {name}: secrets in stored files {leaks}"


def _keys(s3: SeaweedS3, prefix: str) -> list[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix + "/")
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


# ---------------------------------------------------------------------------------------------
# Rendered manifests: credentials only by reference to a Kubernetes Secret.


def _credential_values(objects: list[dict[str, Any]]) -> list[str]:
    """Where a manifest would hold a credential itself: an env var or ConfigMap key with a value."""
    found = []

    def visit(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("name") in CREDENTIAL_VARS and "value" in node:
                found.append(f"{path}: env {node['name']} has a value")
            for key, value in node.items():
                visit(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(value, f"{path}[{i}]")

    for obj in objects:
        visit(obj, f"{obj['kind']}/{obj['metadata']['name']}")
        if obj["kind"] in ("ConfigMap", "Secret"):
            found += [f"{obj['kind']} key {key}" for key in obj.get("data") or {} if key in CREDENTIAL_VARS]
    return found


def _objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


RENDERS = [f"k8s render --kind {kind}" for kind in defaults.KINDS] + [
    *(f"helm template -f ci/{path.name}" for path in sorted((CHART / "ci").glob("*.yaml"))),
    "helm template with s3.existingSecret",
    "helm template with credentials in the values",
    "helm template with credentials in the endpoint URL",
]


@pytest.mark.parametrize("render", RENDERS)
def test_rendered_manifests_hold_no_secret(work, helm: Helm, render: str) -> None:
    folder, env, _ = work
    secret, key = SECRETS["AWS_SECRET_ACCESS_KEY"], SECRETS["AWS_ACCESS_KEY_ID"]
    tiny = yaml.safe_load((folder / "spec.yaml").read_text())
    if render.startswith("k8s render"):
        kind = render.rsplit(" ", 1)[1]
        result = run_cli(
            "k8s",
            "render",
            *([] if kind == "raycluster" else ["spec.yaml"]),
            "--kind",
            kind,
            "--s3-secret",
            "my-creds",
            cwd=folder,
            env=env,
        )
    elif render.startswith("helm template -f"):
        result = helm.template(None, CHART / render.split(" ")[-1], release="ci")
    elif render.endswith("existingSecret"):
        result = helm.template({"sweep": tiny, "s3": {"existingSecret": "my-creds"}, "cluster": {"enabled": True}})
    elif render.endswith("in the values"):  # the chart has no place for them: refused, without echoing them
        result = helm.template(
            {"sweep": tiny, "s3": {"existingSecret": "my-creds", "accessKeyId": key, "secretAccessKey": secret}}
        )
        assert result.returncode != 0 and "secretAccessKey" in result.stderr, result.stdout[:2000]
    else:  # http://KEY:SECRET@host would reach every pod through the ConfigMap: refused
        values = {
            "sweep": tiny,
            "oneOff": {"enabled": True},
            "s3": {"endpointUrl": f"http://{key}:{secret}@minio:9000"},
        }
        result = helm.template(values)
        assert result.returncode != 0 and "s3.endpointUrl must not hold credentials" in result.stderr, result.stdout[
            :2000
        ]
    text = result.stdout + result.stderr
    assert not _found(text, [*SECRETS.values(), SETTINGS_TOKEN, FILE_TOKEN]), f"{render} shows a secret"
    if result.returncode == 0:
        objects = _objects(result.stdout)
        assert not _credential_values(objects), _credential_values(objects)
        if "existingSecret" in render or "k8s render" in render:
            assert "my-creds" in result.stdout  # the credentials, by reference
