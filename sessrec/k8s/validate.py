"""Validate manifests offline, as an API server and the KubeRay operator would.

ray.io objects are checked against the CRDs' ``openAPIV3Schema`` made strict (unknown fields are
errors), the operator's own rules (name lengths, TTL needs shutdown, replica bounds, cron syntax)
are checked here (only on fields of the type the schema wants, so bad input never crashes them),
built-in kinds go through ``kubernetes-validate``. Pod security is reported apart, as "policy"
findings of a Pod Security Standard level (``sessrec.k8s.policy``), and a sweep spec carried in a
ConfigMap gets the same warnings as ``tune run`` ("warning").

The CRDs come from a folder (``--crd-dir``, $SESSREC_CRD_DIR) or the cluster (``--from-cluster``).

The KubeRay operator's own rules live in ``sessrec.k8s.operator_rules``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import jsonschema
import yaml

from sessrec import yaml_text
from sessrec.errors import NotFoundError, SessrecError
from sessrec.k8s.defaults import SPEC_KEY
from sessrec.k8s.operator_rules import implicit_pods_policy, metadata_problems, operator_problems
from sessrec.k8s.policy import pod_resources_problems, pod_security_problems, pod_specs
from sessrec.k8s.render import order_warning
from sessrec.spec import parse_spec

#: What a problem is: "error" (the API server or the operator refuses the object), "policy" (a
#: Pod Security Standard the namespace may enforce) or "warning" (accepted, but likely a mistake).
LEVELS = ("error", "policy", "warning")
CRD_NAMES = {
    "RayCluster": "rayclusters.ray.io",
    "RayJob": "rayjobs.ray.io",
    "RayService": "rayservices.ray.io",
    "RayCronJob": "raycronjobs.ray.io",
}
HOW_TO_GET_CRDS = (
    "KubeRay's CRDs are needed to check ray.io objects: pass --crd-dir DIR (the crds/ folder of the "
    "kuberay-operator Helm chart, or a folder with the output of `kubectl get crd "
    + " ".join(CRD_NAMES.values())
    + " -o yaml > crds.yaml`), --from-cluster, or set SESSREC_CRD_DIR"
)


@dataclass(frozen=True)
class Problem:
    source: str
    obj: str
    field: str
    message: str
    level: str = "error"

    def __str__(self) -> str:
        return f"{self.source}: {self.obj}: {self.level}: {self.field}: {self.message}"


def latest_kube_version() -> str:
    """The newest Kubernetes version (major.minor) whose schemas the installed kubernetes-validate has."""
    try:
        from kubernetes_validate.utils import latest_version
    except ImportError:
        message = "validating built-in kinds needs the kubernetes-validate package (pip install 'sessrec[k8s]')"
        raise SessrecError(message) from None
    return ".".join(latest_version().split(".")[:2])


class CrdStore:
    """KubeRay's CustomResourceDefinitions by kind, from a folder or from the cluster's API.

    A folder may hold the operator chart's ``ray.io_<kind>s.yaml`` files or any YAML files with
    CRDs in them (also a ``kind: List``, as ``kubectl get crd ... -o yaml`` writes)."""

    def __init__(
        self, directory: Path | None = None, crds: Mapping[str, dict[str, Any]] | None = None, origin: str = ""
    ) -> None:
        self.directory = directory
        self._crds: dict[str, dict[str, Any]] = dict(crds or {})
        self._scanned = crds is not None
        self.origin = origin or (str(directory) if directory else "the cluster")
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator | None] = {}

    @classmethod
    def from_dir(cls, directory: str | Path) -> CrdStore:
        path = Path(directory)
        if not path.is_dir():
            raise SessrecError(f"no KubeRay CRD folder {path}: {HOW_TO_GET_CRDS}")
        return _store_for(path.resolve())

    @classmethod
    def from_environment(cls) -> CrdStore:
        env = os.environ.get("SESSREC_CRD_DIR")
        if not env:
            raise SessrecError(HOW_TO_GET_CRDS)
        return cls.from_dir(env)

    @classmethod
    def from_cluster(cls, context: str | None = None) -> CrdStore:
        """The CRDs through the Kubernetes API, with the user's kubeconfig ($KUBECONFIG or ~/.kube/config)."""
        try:
            from kubernetes import client, config
            from kubernetes.client.exceptions import ApiException
            from kubernetes.config.config_exception import ConfigException
        except ImportError:
            raise SessrecError("--from-cluster needs the kubernetes package: pip install 'sessrec[k8s]'") from None
        try:
            api_client = config.new_client_from_config(context=context)
        except (ConfigException, OSError) as exc:
            raise SessrecError(f"--from-cluster: no usable kubeconfig ({exc})") from None
        api = client.ApiextensionsV1Api(api_client)
        crds: dict[str, dict[str, Any]] = {}
        try:
            for kind, name in CRD_NAMES.items():
                try:
                    response: Any = api.read_custom_resource_definition(
                        name, _preload_content=False, _request_timeout=30
                    )
                except ApiException as exc:
                    if exc.status == 404:
                        continue  # e.g. RayCronJob, served only with the operator's feature gate
                    raise SessrecError(f"--from-cluster: reading CRD {name}: {exc.status} {exc.reason}") from None
                crds[kind] = json.loads(response.data)
        except (OSError, ValueError) as exc:  # urllib3 errors are OSErrors; bad JSON is a ValueError
            raise SessrecError(f"--from-cluster: cannot reach the Kubernetes API: {exc}") from None
        finally:
            api_client.close()
        if not crds:
            raise SessrecError(
                "--from-cluster: the cluster has none of KubeRay's CRDs: is the kuberay-operator installed?"
            )
        host = api_client.configuration.host
        return cls(crds=crds, origin=f"the cluster at {host}")

    def crd(self, kind: str) -> dict[str, Any]:
        if kind not in self._crds and self.directory is not None:
            named = self.directory / f"ray.io_{kind.lower()}s.yaml"
            if named.is_file():
                for crd in _crds_in(named):
                    self._crds.setdefault(crd["spec"]["names"]["kind"], crd)
            if kind not in self._crds and not self._scanned:
                self._scanned = True
                for path in sorted(self.directory.iterdir()):
                    if path.suffix in (".yaml", ".yml", ".json") and path != named:
                        for crd in _crds_in(path):
                            self._crds.setdefault(crd["spec"]["names"]["kind"], crd)
        if kind not in self._crds:
            raise SessrecError(f"no CRD for ray.io kind {kind} in {self.origin}")
        return self._crds[kind]

    def validator(self, kind: str, version: str) -> jsonschema.protocols.Validator | None:
        key = (kind, version)
        if key not in self._validators:
            self._validators[key] = None
            for entry in self.crd(kind)["spec"].get("versions") or []:
                if entry.get("name") == version and entry.get("served", False):
                    schema = strict_schema(entry["schema"]["openAPIV3Schema"])
                    self._validators[key] = jsonschema.Draft7Validator(schema, format_checker=_FORMATS)
        return self._validators[key]


@functools.cache
def _store_for(directory: Path) -> CrdStore:
    # One store per folder and process: each CRD is about 1 MB of YAML, parsed once.
    return CrdStore(directory)


def _crds_in(path: Path) -> list[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with path.open("rb") as handle:
            documents = list(yaml.load_all(handle, Loader=loader))
    except (OSError, yaml.YAMLError) as exc:
        raise SessrecError(f"cannot read CRDs from {path}: {exc}") from None
    found = []
    for doc in documents:
        items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
        for item in items or []:
            if isinstance(item, dict) and item.get("kind") == "CustomResourceDefinition":
                if item.get("spec", {}).get("group") == "ray.io":
                    found.append(item)
    return found


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("int32")
def _int32(value: Any) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@_FORMATS.checks("int64")
def _int64(value: Any) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def strict_schema(node: Any) -> Any:
    """A CRD structural schema as plain JSON Schema with the API server's strict field validation.

    ``x-kubernetes-int-or-string`` becomes integer-or-string, ``nullable`` adds null, and objects
    that list ``properties`` refuse other fields unless they preserve unknown fields.
    """
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if "properties" in out:
        out["properties"] = {key: strict_schema(value) for key, value in out["properties"].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = strict_schema(out[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in out:
            out[key] = [strict_schema(item) for item in out[key]]
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserves = out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and "additionalProperties" not in out and not preserves:
        out["additionalProperties"] = False
    return out


@dataclass(frozen=True)
class Checks:
    """What to check against: the Kubernetes version of the built-in schemas (None: the newest the
    installed kubernetes-validate has), the pod security level and where the CRDs come from (None:
    $SESSREC_CRD_DIR, read when a ray.io object needs them)."""

    kube_version: str | None = None
    policy: str = "restricted"
    crds: CrdStore | None = None

    def store(self) -> CrdStore:
        return self.crds if self.crds is not None else CrdStore.from_environment()

    def version(self) -> str:
        return self.kube_version or latest_kube_version()


def validate_files(paths: Iterable[str], checks: Checks | None = None) -> tuple[int, list[Problem]]:
    """Validate manifest files ("-": standard input); returns (objects checked, problems)."""
    count = 0
    problems: list[Problem] = []
    for path in paths:
        if path == "-":
            text, source = yaml_text.read_stream(sys.stdin.buffer, "<stdin>"), "<stdin>"  # bounded
        else:
            try:
                text, source = yaml_text.read_file(path, "manifest file"), path  # bounded; no devices
            except NotFoundError:
                raise SessrecError(f"cannot read {path}: No such file or directory") from None
        n, found = validate_text(text, source, checks)
        count, problems = count + n, problems + found
    return count, problems


def validate_text(text: str, source: str, checks: Checks | None = None) -> tuple[int, list[Problem]]:
    try:
        documents = [doc for doc in yaml_text.load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        return 0, [Problem(source, "-", "-", f"not valid YAML: {yaml_text.error_text(exc)}")]
    problems: list[Problem] = []
    for index, doc in enumerate(documents):
        problems += validate_object(doc, source, checks, index)
    return len(documents), problems


def validate_object(obj: Any, source: str, checks: Checks | None = None, index: int = 0) -> list[Problem]:
    """The problems of one object: errors (schema, operator rules, resources), policy findings (the
    pod security level of ``checks``) and warnings. Never raises on bad content."""
    checks = checks or Checks()
    if not isinstance(obj, dict) or not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str):
        return [Problem(source, f"document {index + 1}", "-", "not a Kubernetes object (needs apiVersion and kind)")]
    kind = obj["kind"]
    metadata = obj.get("metadata")
    meta: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
    name = meta.get("name") or meta.get("generateName")
    label = f"{kind}/{name if isinstance(name, str) and name else f'(document {index + 1})'}"
    group, _, version = obj["apiVersion"].rpartition("/")
    if group == "ray.io":
        schema = _crd_problems(obj, kind, version, checks.store())
    else:
        schema = _builtin_problems(obj, checks.version())
    # Operator rules do not judge a field the schema refused (its value may be of any type).
    refused = [field for field, _ in schema]
    rules = [
        (field, message)
        for field, message in metadata_problems(kind, meta) + operator_problems(obj, kind)
        if not any(field == bad or field.startswith((f"{bad}.", f"{bad}[")) for bad in refused)
    ]
    errors = schema + rules
    policy = []
    for path, pod in pod_specs(obj, kind):
        policy += pod_security_problems(pod, path, checks.policy)
        errors += pod_resources_problems(pod, path)
    policy += implicit_pods_policy(obj, kind, checks.policy)
    problems = [Problem(source, label, where, message) for where, message in errors]
    problems += [Problem(source, label, where, message, "policy") for where, message in policy]
    if kind == "ConfigMap" and isinstance(obj.get("data"), dict):
        problems += _configmap_content_problems(obj["data"], source, label, checks)
    return problems


def _crd_problems(obj: dict, kind: str, version: str, crds: CrdStore) -> list[tuple[str, str]]:
    if kind not in CRD_NAMES:
        return [("kind", f"ray.io has no kind {kind} (KubeRay's kinds: {', '.join(CRD_NAMES)})")]
    validator = crds.validator(kind, version)
    if validator is None:
        return [("apiVersion", f"ray.io/{version} is not a served version of {kind}")]
    return list(_schema_errors(validator.iter_errors(obj)))


def _builtin_problems(obj: dict, kube_version: str) -> list[tuple[str, str]]:
    try:  # imported here: only `validate` needs it, and it is not a dependency of the package itself
        import kubernetes_validate
        from kubernetes_validate.utils import SchemaNotFoundError, VersionNotSupportedError
    except ImportError:
        message = "validating built-in kinds needs the kubernetes-validate package (pip install 'sessrec[k8s]')"
        raise SessrecError(message) from None
    try:
        kubernetes_validate.validate(obj, kube_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return list(_schema_errors([exc]))
    except SchemaNotFoundError:
        return [("kind", f"Kubernetes {kube_version} has no {obj['kind']} in {obj['apiVersion']}")]
    except VersionNotSupportedError:
        raise SessrecError(f"kubernetes-validate has no schemas for Kubernetes {kube_version}") from None
    return []


def _dotted(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(object)"


def _schema_errors(errors: Iterable[jsonschema.ValidationError]) -> Iterator[tuple[str, str]]:
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        where = list(error.absolute_path)
        schema = cast("Mapping[str, Any]", error.schema)  # a keyword's error: its schema is an object
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(schema.get("properties", {}))
            for key in sorted(set(error.instance) - allowed):
                yield _dotted([*where, key]), "unknown field"
        elif error.validator == "anyOf" and schema.get("x-kubernetes-int-or-string"):
            yield _dotted(where), f"must be an integer or a string, got {error.instance!r}"
        else:
            message = " ".join(error.message.split())
            yield _dotted(where), message if len(message) <= 200 else message[:197] + "..."


def _configmap_content_problems(data: dict, source: str, label: str, checks: Checks) -> list[Problem]:
    """Sweep specs and manifests carried in a ConfigMap are checked like files of their own."""
    problems = []
    for key, text in data.items():
        if not isinstance(text, str):
            continue
        if key == SPEC_KEY:
            try:
                spec = parse_spec(text, f"data.{key}")
            except SessrecError as exc:
                problems.append(Problem(source, label, f"data.{key}", str(exc)))
            else:
                if warning := order_warning(spec):
                    problems.append(Problem(source, label, f"data.{key}", warning, "warning"))
        elif key.endswith((".yaml", ".yml")):
            try:
                documents = [doc for doc in yaml_text.load_all(text) if doc is not None]
            except yaml.YAMLError:
                continue  # YAML configuration of some other program, not ours to judge
            if documents and all(isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc for doc in documents):
                for index, doc in enumerate(documents):
                    problems += validate_object(doc, f"{source} ({label} data.{key})", checks, index)
    return problems
