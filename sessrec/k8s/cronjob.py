"""The CronJob fallback of a sweep schedule, for operators without KubeRay's RayCronJob gate: a
CronJob whose pod creates one RayJob per run (``render --kind cronjob``), with its service
account and the RayJob manifest it creates."""

from __future__ import annotations

import copy
from typing import Any

from sessrec.k8s.defaults import (
    CONTAINER_SECURITY,
    CRONJOB_BACKOFF_LIMIT,
    CRONJOB_DEADLINE_SECONDS,
    CRONJOB_HISTORY_LIMIT,
    CRONJOB_STARTING_DEADLINE_SECONDS,
    CRONJOB_TTL_SECONDS,
    DEFAULT_SCHEDULE,
    KUBECTL_IMAGE,
    KUBECTL_RESOURCES,
    KUBECTL_UID,
    RAYJOB_KEY,
    SPEC_DIR,
)
from sessrec.k8s.render import RenderOptions, dump_yaml, object_labels, pod_labels, rayjob_spec


def cronjob_objects(name: str, sweep: str, options: RenderOptions) -> list[dict[str, Any]]:
    """For operators without the RayCronJob gate: a CronJob whose pod creates one RayJob per run.

    The RayJob manifest sits in a ConfigMap with ``generateName``; ``kubectl create`` (not
    ``apply``, which needs a fixed name) gives each run a unique RayJob. The pod's service
    account may only create RayJobs.
    """
    scheduler = f"{name}-scheduler"
    labels = object_labels(name, "sweep-schedule", sweep)
    job = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"generateName": f"{name}-", "labels": object_labels(name, "sweep", sweep)},
        "spec": rayjob_spec(name, sweep, options, None),
    }
    spec: dict[str, Any] = {"schedule": options.schedule or DEFAULT_SCHEDULE}
    if options.time_zone:
        spec["timeZone"] = options.time_zone
    spec.update(
        # Forbid: a run that has not created its RayJob yet is never doubled by the next one.
        concurrencyPolicy="Forbid",
        startingDeadlineSeconds=CRONJOB_STARTING_DEADLINE_SECONDS,
        successfulJobsHistoryLimit=CRONJOB_HISTORY_LIMIT,
        failedJobsHistoryLimit=CRONJOB_HISTORY_LIMIT,
        jobTemplate={
            "spec": {
                "backoffLimit": CRONJOB_BACKOFF_LIMIT,
                "activeDeadlineSeconds": CRONJOB_DEADLINE_SECONDS,
                "ttlSecondsAfterFinished": CRONJOB_TTL_SECONDS,
                "template": {
                    "metadata": {"labels": pod_labels(name, "sweep-schedule")},
                    "spec": {
                        "serviceAccountName": scheduler,
                        "restartPolicy": "Never",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": KUBECTL_UID,
                            "runAsGroup": KUBECTL_UID,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "create-rayjob",
                                "image": KUBECTL_IMAGE,
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["kubectl"],
                                "args": [
                                    "create",
                                    "--namespace=$(POD_NAMESPACE)",
                                    "--filename",
                                    f"{SPEC_DIR}/{RAYJOB_KEY}",
                                    "--output",
                                    "name",
                                ],
                                "env": [
                                    {
                                        "name": "POD_NAMESPACE",
                                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                                    },
                                    {"name": "HOME", "value": "/tmp"},  # kubectl's discovery cache
                                ],
                                "resources": copy.deepcopy(KUBECTL_RESOURCES),
                                "securityContext": {
                                    **copy.deepcopy(CONTAINER_SECURITY),
                                    "readOnlyRootFilesystem": True,
                                },
                                "volumeMounts": [
                                    {"name": "rayjob", "mountPath": SPEC_DIR, "readOnly": True},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "rayjob", "configMap": {"name": f"{name}-rayjob"}},
                            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        ],
                    },
                },
            }
        },
    )
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": scheduler, "labels": labels}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": scheduler, "labels": labels},
            "rules": [{"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["create"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": scheduler, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": scheduler},
            "subjects": [{"kind": "ServiceAccount", "name": scheduler}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{name}-rayjob", "labels": labels},
            "data": {RAYJOB_KEY: dump_yaml([job], explicit_start=False)},
        },
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "labels": labels}, "spec": spec},
    ]
