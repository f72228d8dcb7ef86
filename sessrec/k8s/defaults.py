"""The constants of sessrec's Kubernetes objects, each defined once.

The Helm chart (``helm/sessrec``) repeats several of them: its values.yaml defaults are compared
through renders (tests/test_k8s_chart.py renders both), and the limits and patterns its checks and
values.schema.json repeat are compared one by one by ``test_the_chart_repeats_the_python_constants``.
"""

from __future__ import annotations

import re
from typing import Any

from sessrec import __version__

#: Ray in the image (Dockerfile BASE_IMAGE); KubeRay needs it, e.g. token auth wants >= 2.52.
RAY_VERSION = "2.60.0"
#: The first Ray with token authentication (``authOptions.mode: token``).
TOKEN_AUTH_RAY_VERSION = "2.52.0"
DEFAULT_IMAGE = f"sessrec:{__version__}"
KUBECTL_IMAGE = "registry.k8s.io/kubectl:v1.32.4"
DEFAULT_SCHEDULE = "0 2 * * *"
DEFAULT_S3_CONFIG = "sessrec-s3"
DEFAULT_S3_SECRET = "sessrec-s3-credentials"
#: Kubernetes version whose built-in schemas `validate` uses: the chart's minimum (kubeVersion).
KUBE_VERSION = "1.29"

SPEC_DIR = "/etc/sessrec"
SPEC_KEY = "sweep.yaml"
RAYJOB_KEY = "rayjob.yaml"
#: The in-cluster command is the laptop command; the spec path is relative to the job's working_dir.
ENTRYPOINT = f"sessrec tune run {SPEC_KEY} --address auto"
#: `render --promote NAME` (the chart's `promote.name`): the job ends with PROMOTE_COMMAND on the sweep it
#: ran. Both commands take the id from the shell variable SWEEP_ID_VARIABLE, set once at the start: the
#: fixed --sweep-id, or <spec name>-SWEEP_ID_STAMP, bash for new_sweep_id's <UTC time>-<4 hex>, made
#: once per run (tests/test_k8s_promote.py runs it and compares the shapes).
PROMOTE_COMMAND = "sessrec results promote"
PROMOTE_IF_BETTER = True
SWEEP_ID_VARIABLE = "SWEEP_ID"
SWEEP_ID_STAMP = "$(date -u +%Y%m%d-%H%M%S)-$(printf %04x $RANDOM)"
#: ConfigMap volumes hold `..data` and timestamped folders besides the keys; upload only the keys.
RUNTIME_ENV_YAML = f'working_dir: {SPEC_DIR}\nexcludes: ["..*"]\n'

RAY_UID, RAY_GID = 1000, 100  # the rayproject/ray image's `ray` user
KUBECTL_UID = 65532  # any non-root uid: the kubectl image needs no home or files of its own

HEAD_RESOURCES = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
WORKER_RESOURCES = {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}
AUTOSCALER_RESOURCES = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
SUBMITTER_RESOURCES = {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
KUBECTL_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}
SHM_SIZE = "2Gi"

# `sessrec serve` as a RayService: Ray Serve calls SERVE_IMPORT_PATH with the config's `args`
# (the model); sessrec.serving builds the deployment SERVE_DEPLOYMENT (tests/test_k8s_serve.py checks).
SERVE_IMPORT_PATH = "sessrec.serving:app_from_args"
SERVE_APP = "sessrec"
SERVE_DEPLOYMENT = "sessrec-recommender"
#: Requests one replica takes at once (Serve's max_ongoing_requests); more wait in its queue.
SERVE_MAX_ONGOING_REQUESTS = 64
SERVE_PORT = 8000
SERVE_REPLICAS = 1
SERVE_MIN_REPLICAS = 1
#: Requests in flight per replica that Serve's autoscaler aims at (below SERVE_MAX_ONGOING_REQUESTS).
SERVE_TARGET_ONGOING_REQUESTS = 16
#: What each replica reserves in Ray (ray_actor_options): the autoscaler adds workers to fit them.
SERVE_REPLICA_CPUS = 1
SERVE_REPLICA_MEMORY = "2Gi"
WORKER_GROUP = "cpu"
WORKER_MIN, WORKER_MAX = 0, 8
AUTOSCALER_IDLE_SECONDS = 60
JOB_TTL_SECONDS = 600
JOB_DEADLINE_SECONDS = 86400
JOB_BACKOFF_LIMIT = 1  # one retry on a fresh cluster, e.g. after a lost head node
#: The CronJob fallback: a run may start up to an hour late, 3 runs of each outcome are kept, and
#: its pod (which only creates a RayJob) gets 2 retries within 10 minutes and is removed after a day.
CRONJOB_STARTING_DEADLINE_SECONDS = 3600
CRONJOB_HISTORY_LIMIT = 3
CRONJOB_BACKOFF_LIMIT = 2
CRONJOB_DEADLINE_SECONDS = 600
CRONJOB_TTL_SECONDS = 86400

#: KubeRay name limits (ray-operator/controllers/ray/utils/constant.go) and the API's CronJob limit.
NAME_LIMITS = {"RayCluster": 53, "RayJob": 47, "RayService": 47, "RayCronJob": 36, "CronJob": 52}
GENERATE_NAME_SUFFIX = 5  # characters the API server appends to metadata.generateName
#: The longest name of any other object (a DNS-1123 subdomain), and of a label's name or value.
SUBDOMAIN_LIMIT = 253
LABEL_LIMIT = 63

KINDS = ("rayjob", "raycronjob", "cronjob", "raycluster", "rayservice")

# Label rules: the names Kubernetes accepts.
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": RAY_UID,
    "runAsGroup": RAY_GID,
    "fsGroup": RAY_GID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
