"""By hand, not in CI: build the image from the Dockerfile and run a rendered RayJob's and
RayService's flow with it.

    sudo .venv/bin/python tests/image_check.py      # root, podman (runc), debootstrap; ~5 min

CI has no container engine that can pull rayproject/ray, so this builds on a stand-in base made
here: Debian bookworm, a Python 3.11 venv at /home/ray/anaconda3 holding the same Ray, user
1000:100 (the real base's layout). Then, all on 127.0.0.1 (podman with --network host):
SeaweedFS S3 holds the dataset; a head container and a worker container run `ray start` with
the rayStartParams and token auth of `sessrec k8s render tiny --promote ...`; a submitter
container runs its entrypoint through `ray job submit` with the sweep ConfigMap at /etc/sessrec,
in the bash command line KubeRay's K8sJobMode pod runs, twice (the second as a RayJob retry:
`--resume-existing` returns the finished sweep, and `results promote --if-better` keeps the model
it promoted the first time). Then the RayService's part on the same head and worker: the
serveConfigV2 of `sessrec k8s render --kind rayservice --model <the promoted name>` goes to the
head's Serve REST API as KubeRay sends it, and the served model answers GET /healthz and
POST /recommend. The results are read back from S3 on this machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from servers import SeaweedS3, free_port, ray_node_port_flags

from sessrec.k8s.defaults import RAY_VERSION

REPO = Path(__file__).resolve().parents[1]
SESSREC = [sys.executable, "-m", "sessrec"]
BASE = f"localhost/ray-stand-in:{RAY_VERSION}-py311"
IMAGE = "localhost/sessrec:image-check"
SWEEP_ID = "image-check"
MODEL = "image-check-live"  # what the job promotes and the RayService serves
# runc, not crun (hybrid cgroups here); the ulimits are what runc accepts in this VM.
PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, **kwargs)


def stand_in_base() -> None:
    if subprocess.run([*PODMAN, "image", "exists", BASE], check=False).returncode == 0:
        return
    with tempfile.TemporaryDirectory(prefix="ray-base-") as folder:
        rootfs = Path(folder, "rootfs")
        run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(rootfs),
                "http://deb.debian.org/debian",
            ],
            stdout=subprocess.DEVNULL,
        )
        # The host's CA bundle and resolver: pip inside reaches PyPI as this machine does.
        shutil.copy(CA_BUNDLE, rootfs / CA_BUNDLE.relative_to("/"))
        shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")
        inside = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "PIP_CERT": str(CA_BUNDLE),
        }  # none of this machine's PIP_* settings
        run(["chroot", str(rootfs), "useradd", "-u", "1000", "-g", "100", "-m", "-s", "/bin/bash", "ray"], env=inside)
        run(
            [
                "chroot",
                str(rootfs),
                "su",
                "ray",
                "-c",
                "python3 -m venv /home/ray/anaconda3 && /home/ray/anaconda3/bin/pip install "
                f"-q --no-cache-dir 'ray[tune,default]=={RAY_VERSION}'",
            ],
            env=inside,
        )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(
            [
                "podman",
                "import",
                "--quiet",
                "--change",
                "ENV PATH=/home/ray/anaconda3/bin:/usr/local/bin:/usr/bin:/bin",
                "--change",
                f"ENV PIP_CERT={CA_BUNDLE}",
                "--change",
                "USER 1000:100",
                "--change",
                "WORKDIR /home/ray",
                "-",
                BASE,
            ],
            stdin=tar.stdout,
            stdout=subprocess.DEVNULL,
        )
        assert tar.wait() == 0


def rendered() -> tuple[str, dict, dict, dict, str]:
    """The sweep spec, head and worker rayStartParams, runtime env and entrypoint of `k8s render`."""
    text = run(
        [*SESSREC, "k8s", "render", "tiny", "--sweep-id", SWEEP_ID, "--promote", MODEL, "--image", IMAGE],
        capture_output=True,
        text=True,
    ).stdout
    objects = [o for o in yaml.safe_load_all(text) if o]
    spec = next(o for o in objects if o["kind"] == "ConfigMap")["data"]["sweep.yaml"]
    job = next(o for o in objects if o["kind"] == "RayJob")["spec"]
    cluster = job["rayClusterSpec"]
    assert job["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    return (
        spec,
        cluster["headGroupSpec"]["rayStartParams"],
        cluster["workerGroupSpecs"][0]["rayStartParams"],
        yaml.safe_load(job["runtimeEnvYAML"]),
        job["entrypoint"],
    )


def serve_config(port: int) -> dict:
    """The serveConfigV2 of `k8s render --kind rayservice`, for this machine: in a cluster every pod
    has its own address, here head and worker share the host's, so one proxy (the head's) takes the
    port and the replica runs on the worker as in the cluster (the head has no CPUs for it)."""
    text = run(
        [*SESSREC, "k8s", "render", "--kind", "rayservice", "--model", MODEL, "--image", IMAGE],
        capture_output=True,
        text=True,
    ).stdout
    service = next(o for o in yaml.safe_load_all(text) if o and o["kind"] == "RayService")
    assert service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    config["http_options"] = {**config["http_options"], "host": "127.0.0.1", "port": port}
    config["proxy_location"] = "HeadOnly"
    return config


def http(url: str, token: str | None = None, body: object = None, method: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, json.loads(text) if text.strip() else {}
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, {"body": text.decode(errors="replace")[:500]}


def check_serving(dashboard: str, token: str, known: list[str], started: float) -> None:
    """Deploy the RayService's Serve config as KubeRay does (PUT /api/serve/applications/ on the
    head's dashboard) and ask the served model what a client would."""
    port = free_port()
    status, answer = http(f"{dashboard}/api/serve/applications/", token, serve_config(port), method="PUT")
    assert status == 200, (status, answer)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            status, health = http(f"{url}/healthz")
            if status == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            _, apps = http(f"{dashboard}/api/serve/applications/", token)
            raise SystemExit(f"the RayService's model did not come up: {json.dumps(apps)[-3000:]}")
        time.sleep(2)
    assert health["status"] == "ok" and health["version"], health
    status, answer = http(f"{url}/recommend", body={"session": [*known[:2], "no-such-item"], "k": 5})
    assert status == 200, (status, answer)
    assert len(answer["items"]) == 5 and answer["unknown"] == ["no-such-item"], answer
    assert answer["version"] == health["version"], answer
    status, model = http(f"{url}/model")
    assert status == 200 and (model["name"], model["provenance"]["sweep"]) == (MODEL, SWEEP_ID), model
    print(
        f"serving {MODEL} (sweep {SWEEP_ID}) on the RayService's config: GET /healthz ok, "
        f"POST /recommend -> {answer['items']} ({time.monotonic() - started:.0f} s)",
        flush=True,
    )


def known_items(env: dict[str, str]) -> list[str]:
    """Items the promoted model knows, read from S3 here, as a client would know them."""
    script = (
        "import json, sys; from sessrec.serving import ModelHolder; "
        "h = ModelHolder(sys.argv[1], sys.argv[2], 0); print(json.dumps([str(k) for k in h.current.scorer.keys[:3]]))"
    )
    out = run([sys.executable, "-c", script, MODEL, env["SESSREC_STORAGE"]], env=env, capture_output=True, text=True)
    return json.loads(out.stdout)


def env_flags(env: dict[str, str]) -> list[str]:
    return [flag for key, value in env.items() for flag in ("-e", f"{key}={value}")]


def wait_for_nodes(dashboard: str, token: str, count: int) -> None:
    request = urllib.request.Request(
        f"{dashboard}/api/v0/nodes?limit=10&detail=false", headers={"Authorization": f"Bearer {token}"}
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            rows = json.loads(urllib.request.urlopen(request, timeout=5).read())["data"]["result"]["result"]
            if sum(row["state"] == "ALIVE" for row in rows) == count:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            logs = run([*PODMAN, "logs", "sessrec-check-head"], capture_output=True, text=True)
            raise SystemExit(f"the cluster did not come up:\n{(logs.stdout + logs.stderr)[-3000:]}")
        time.sleep(2)


def main() -> None:
    missing = [tool for tool in ("podman", "debootstrap", "runc") if not shutil.which(tool)]
    if missing or os.geteuid() != 0:
        raise SystemExit(
            f"image_check needs root and {', '.join(missing) or 'podman, debootstrap, runc'} "
            "(apt-get install podman debootstrap runc)"
        )
    started = time.monotonic()
    stand_in_base()
    run(
        [
            *PODMAN,
            "build",
            "--format",
            "docker",
            "--network",
            "host",
            *LIMITS,
            "--build-arg",
            f"BASE_IMAGE={BASE}",
            "-t",
            IMAGE,
            str(REPO),
        ],
        stdout=subprocess.DEVNULL,
    )
    print(f"image built on the stand-in base ({time.monotonic() - started:.0f} s)", flush=True)
    spec, head_params, worker_params, runtime_env, entrypoint = rendered()
    containers: list[str] = []
    with SeaweedS3() as s3, tempfile.TemporaryDirectory(prefix="sessrec-configmap-") as config_map:
        Path(config_map, "sweep.yaml").write_text(spec)
        os.chmod(config_map, 0o755)
        s3_env = {**s3.env(), "SESSREC_STORAGE": f"s3://{s3.bucket}/sessrec"}
        local_env = {**os.environ, **s3_env}
        run([*SESSREC, "data", "synth", "--name", "demo"], env=local_env, stdout=subprocess.DEVNULL)
        token = secrets.token_hex(32)
        ray_env = {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": token,
            "RAY_USAGE_STATS_ENABLED": "0",
            "AUTOSCALER_METRIC_PORT": str(free_port()),
            "DASHBOARD_METRIC_PORT": str(free_port()),
        }
        gcs, dashboard = free_port(), free_port()
        try:
            for name, params, extra in (
                (
                    "sessrec-check-head",
                    head_params,
                    [
                        "--head",
                        f"--port={gcs}",
                        "--dashboard-host=127.0.0.1",
                        f"--dashboard-port={dashboard}",
                        f"--ray-client-server-port={free_port()}",
                    ],
                ),
                ("sessrec-check-worker", {**worker_params, "num-cpus": 2}, [f"--address=127.0.0.1:{gcs}"]),
            ):
                run(
                    [
                        *PODMAN,
                        "run",
                        "-d",
                        "--name",
                        name,
                        "--network",
                        "host",
                        "--shm-size",
                        "1g",
                        *LIMITS,
                        *env_flags({**s3_env, **ray_env}),
                        IMAGE,
                        "ray",
                        "start",
                        "--block",
                        "--node-ip-address=127.0.0.1",
                        "--disable-usage-stats",
                        *[f"--{k}={v}" for k, v in params.items()],
                        *extra,
                        *ray_node_port_flags(40),
                    ],
                    stdout=subprocess.DEVNULL,
                )
                containers.append(name)
                if name.endswith("head"):
                    wait_for_nodes(f"http://127.0.0.1:{dashboard}", token, 1)
            wait_for_nodes(f"http://127.0.0.1:{dashboard}", token, 2)
            # KubeRay's submitter pod: bash -ce with the entrypoint pasted into its command line.
            submit = (
                f"ray job submit --address http://127.0.0.1:{dashboard} "
                f"--runtime-env-json {shlex.quote(json.dumps(runtime_env))} -- {entrypoint} ;"
            )
            submitter = [
                *PODMAN,
                "run",
                "--rm",
                "--network",
                "host",
                *LIMITS,
                "-v",
                f"{config_map}:/etc/sessrec:ro",
                *env_flags(ray_env),
                IMAGE,
                "/bin/bash",
                "-ce",
                "--",
                submit,
            ]
            for attempt, decision in (("job", "promoted"), ("retried job", "kept")):
                job = subprocess.run(submitter, capture_output=True, text=True, check=False)
                assert job.returncode == 0 and "succeeded" in job.stdout, (job.stdout + job.stderr)[-3000:]
                assert f"{decision} " in job.stdout, job.stdout[-3000:]
                print(f"{attempt}: succeeded, model {decision} ({time.monotonic() - started:.0f} s)", flush=True)
            promotions = json.loads(
                s3.client().get_object(Bucket=s3.bucket, Key=f"sessrec/models/{MODEL}/promotions.json")["Body"].read()
            )
            assert [(p["decision"], p["sweep_id"]) for p in promotions] == [
                ("promoted", SWEEP_ID),
                ("kept", SWEEP_ID),
            ], promotions
            check_serving(f"http://127.0.0.1:{dashboard}", token, known_items(local_env), started)
        finally:
            for name in containers:
                subprocess.run([*PODMAN, "rm", "-f", "-t", "5", name], capture_output=True, check=False)
        best = json.loads(
            run([*SESSREC, "results", "best", SWEEP_ID, "--json"], env=local_env, capture_output=True, text=True).stdout
        )
        shown = json.loads(
            run([*SESSREC, "results", "show", SWEEP_ID, "--json"], env=local_env, capture_output=True, text=True).stdout
        )
        manifest = shown["manifest"]
        assert best["status"] == "completed" and manifest["runs"] == 1, manifest  # the retry trained nothing
        assert manifest["trials"]["total"] == 8 and manifest["trials"]["errored"] == 0, manifest
        assert manifest["versions"]["ray"] == RAY_VERSION, manifest
        print(
            f"sweep {SWEEP_ID}: {manifest['trials']}, "
            f"best validation Recall@10 {best['validation']['recall_at_k']:.3f}, "
            f"read back from S3; {time.monotonic() - started:.0f} s in all"
        )


if __name__ == "__main__":
    main()
