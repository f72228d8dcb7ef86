"""The settings model, defined once for the CLI, the in-cluster job and the Helm chart.

Each setting is taken from, in order: a command-line option, an environment variable, the
settings file (``$SESSREC_CONFIG`` or ``~/.config/sessrec/settings.yaml``), the default.
S3 endpoint, region and credentials are not sessrec settings: they are the standard AWS_*
variables, read by the storage module, so every S3 tool agrees on them.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from sessrec import storage, yaml_text
from sessrec.errors import NotFoundError, SessrecError

#: A Ray token is a few dozen bytes; a token file is read only up to this.
TOKEN_FILE_MAX_BYTES = 64 * 1024

#: setting name -> environment variable
ENV_VARS = {
    "storage": "SESSREC_STORAGE",
    "ray_address": "RAY_ADDRESS",
    "ray_auth_token": "RAY_AUTH_TOKEN",
    "ray_auth_token_file": "RAY_AUTH_TOKEN_PATH",
    "mlflow_tracking_uri": "MLFLOW_TRACKING_URI",
}


@dataclass(frozen=True)
class Settings:
    """sessrec's settings (see the module). The storage root is checked when made: an empty root, a
    scheme other than s3://, a file or an unusable folder is a SessrecError."""

    storage: str = "./sessrec-data"
    ray_address: str | None = None
    ray_auth_token: str | None = None
    ray_auth_token_file: str | None = None
    mlflow_tracking_uri: str | None = None  # an MLflow tracker: every sweep is logged to it

    def __post_init__(self) -> None:
        root = self.storage
        scheme, separator, rest = root.partition("://")
        if not root.strip():
            raise SessrecError("the storage root is empty: give a local folder or s3://bucket/prefix")
        if separator and scheme != "s3":
            # Taken as a local path, 'gs://b/x' would quietly become the folders ./gs:/b/x.
            raise SessrecError(f"storage root {root!r}: only local folders and s3://bucket/prefix are supported")
        if separator and not rest.split("/")[0]:
            raise SessrecError(f"storage root {root!r} names no bucket: s3://bucket/prefix")
        if separator:
            bucket, _, key = rest.partition("/")
            storage.check_s3_key(root, key)  # s3://bucket/../x is refused, not read as another prefix
            return
        try:
            info = os.stat(root)
        except (FileNotFoundError, NotADirectoryError):
            storage.confine_writes(root)
            return  # made on the first write
        except OSError as exc:  # e.g. /proc/1/root: Permission denied
            raise SessrecError(f"storage root {root!r} cannot be used: {exc.strerror or exc}") from None
        if not stat.S_ISDIR(info.st_mode):
            raise SessrecError(f"storage root {root!r} is a file, not a folder")
        if not os.access(root, os.R_OK | os.X_OK):
            raise SessrecError(f"storage root {root!r} cannot be used: Permission denied")
        storage.confine_writes(root)

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """The settings from the settings file, then the environment (:data:`ENV_VARS`), then
        ``overrides`` (None skipped), each over the one before; a bad file or value is a
        SessrecError."""
        values: dict[str, Any] = {}
        values.update(_file_settings())
        values.update({name: os.environ[var] for name, var in ENV_VARS.items() if os.environ.get(var)})
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)

    def auth_token(self) -> str | None:
        """The Ray token: given directly, or read from a token file."""
        if self.ray_auth_token:
            return self.ray_auth_token.strip()
        if self.ray_auth_token_file:
            try:
                path = Path(self.ray_auth_token_file).expanduser()
                return storage.read_text(str(path), TOKEN_FILE_MAX_BYTES, f"the Ray token file {path}").strip()
            except NotFoundError:
                raise SessrecError(f"cannot read the Ray token file {self.ray_auth_token_file}: no such file") from None
        return None


#: How long a sweep rides out unreachable storage (S3 down, a network cut) before it stops
#: resumably, and how long its driver waits for a lost Ray cluster: seconds, overridden by the
#: environment variable. Checked (check_patience) before a sweep writes anything.
STORAGE_PATIENCE_VAR, CLUSTER_PATIENCE_VAR = "SESSREC_STORAGE_PATIENCE", "SESSREC_CLUSTER_PATIENCE"
PATIENCE_DEFAULTS_S = {STORAGE_PATIENCE_VAR: 120.0, CLUSTER_PATIENCE_VAR: 30.0}


def seconds_setting(
    variable: str, default: float, low: float, high: float = math.inf, above_low: bool = False
) -> float:
    """Seconds from the environment variable ``variable`` (unset or empty: ``default``): a finite
    number from ``low`` (above it, with ``above_low``) to ``high``; anything else is one
    ``SessrecError`` line naming the variable and the range."""
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not ((value > low if above_low else value >= low) and value <= high and math.isfinite(value)):
        bounds = (f"above {low:g}" if above_low else f"from {low:g}") + (f" to {high:g}" if high < math.inf else "")
        raise SessrecError(f"{variable} must be a number of seconds {bounds}, not {raw!r}")
    return value


def patience(variable: str) -> float:
    """The patience ``variable`` sets (one of PATIENCE_DEFAULTS_S), or its default; anything but
    a finite number of seconds above 0 is refused."""
    return seconds_setting(variable, PATIENCE_DEFAULTS_S[variable], 0, above_low=True)


def check_patience() -> None:
    """Every patience variable, whether this run will use it or not: refused before a sweep
    claims its id or writes anything, not minutes into it."""
    for variable in PATIENCE_DEFAULTS_S:
        patience(variable)


def settings_file() -> Path:
    """The settings file's path: ``$SESSREC_CONFIG``, else ``~/.config/sessrec/settings.yaml``."""
    return Path(os.environ.get("SESSREC_CONFIG") or Path.home() / ".config" / "sessrec" / "settings.yaml")


def _file_settings() -> dict[str, Any]:
    path = settings_file()
    if not path.exists():
        return {}
    try:
        data = yaml_text.load(yaml_text.read_file(path, "settings file")) or {}
    except yaml.YAMLError as exc:
        raise SessrecError(f"settings file {path} is not valid YAML: {yaml_text.error_text(exc)}") from None
    except NotFoundError:
        return {}  # removed since the check
    known = {f.name for f in fields(Settings)}
    if not isinstance(data, dict) or set(data) - known:
        raise SessrecError(f"settings file {path} may only set: {', '.join(sorted(known))}")
    wrong = sorted(name for name, value in data.items() if value is not None and not isinstance(value, str))
    if wrong:
        raise SessrecError(f"settings file {path}: {', '.join(wrong)} must be text")
    return {name: value for name, value in data.items() if value is not None}
