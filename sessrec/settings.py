"""The settings model, defined once for the CLI, the in-cluster job and the Helm chart.

Each setting is taken from, in order: a command-line option, an environment variable, the
settings file (``$SESSREC_CONFIG`` or ``~/.config/sessrec/settings.yaml``), the default.
S3 endpoint, region and credentials are not sessrec settings: they are the standard AWS_*
variables, read by the storage module, so every S3 tool agrees on them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from sessrec import yaml_text
from sessrec.errors import SessrecError

#: setting name -> environment variable
ENV_VARS = {
    "storage": "SESSREC_STORAGE",
    "ray_address": "RAY_ADDRESS",
    "ray_auth_token": "RAY_AUTH_TOKEN",
    "ray_auth_token_file": "RAY_AUTH_TOKEN_PATH",
}


@dataclass(frozen=True)
class Settings:
    storage: str = "./sessrec-data"
    ray_address: str | None = None
    ray_auth_token: str | None = None
    ray_auth_token_file: str | None = None

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
        if not separator and Path(root).is_file():
            raise SessrecError(f"storage root {root!r} is a file, not a folder")

    @classmethod
    def load(cls, **overrides: Any) -> "Settings":
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
                return Path(self.ray_auth_token_file).expanduser().read_text().strip()
            except OSError as exc:
                raise SessrecError(f"cannot read the Ray token file {self.ray_auth_token_file}: {exc.strerror}") from None
        return None


def settings_file() -> Path:
    return Path(os.environ.get("SESSREC_CONFIG") or Path.home() / ".config" / "sessrec" / "settings.yaml")


def _file_settings() -> dict[str, Any]:
    path = settings_file()
    if not path.exists():
        return {}
    try:
        data = yaml_text.load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SessrecError(f"settings file {path} is not valid YAML: {yaml_text.error_text(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SessrecError(f"cannot read settings file {path}: {str(exc).splitlines()[0]}") from None
    known = {f.name for f in fields(Settings)}
    if not isinstance(data, dict) or set(data) - known:
        raise SessrecError(f"settings file {path} may only set: {', '.join(sorted(known))}")
    wrong = sorted(name for name, value in data.items() if value is not None and not isinstance(value, str))
    if wrong:
        raise SessrecError(f"settings file {path}: {', '.join(wrong)} must be text")
    return {name: value for name, value in data.items() if value is not None}
