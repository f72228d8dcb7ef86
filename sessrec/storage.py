"""Every read and write of sessrec goes through here: local paths and ``s3://bucket/prefix``.

Writes are atomic: a local file is written to a temporary name in the same folder and renamed
over the target; an S3 object is one PUT (or one completed multipart upload), which S3 makes
visible all at once. Either way a reader sees the old content or the new, never half of it.
S3 settings come from the standard variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION), so AWS, MinIO and other compatible stores work.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sessrec.errors import NotFoundError, StorageError

S3_SCHEME = "s3://"
#: Retries of one S3 request (botocore's standard mode backs off exponentially with jitter).
S3_MAX_ATTEMPTS = 8


def is_s3(uri: str) -> bool:
    return uri.startswith(S3_SCHEME)


def join(base: str, *parts: str) -> str:
    if is_s3(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base, *parts))


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> "S3Location":
        rest = uri[len(S3_SCHEME) :]
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise StorageError(f"no bucket in {uri!r}")
        return cls(bucket, key)


@functools.lru_cache(maxsize=None)
def _s3_client(endpoint: str | None, region: str | None, max_attempts: int = S3_MAX_ATTEMPTS):
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=5 if max_attempts > 1 else 2,
        read_timeout=60 if max_attempts > 1 else 5,
        s3={"addressing_style": "path"} if endpoint else {},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region, config=config)


def s3_client():
    """A client configured from the current AWS_* variables (cached per endpoint and region)."""
    return _s3_client(os.environ.get("AWS_ENDPOINT_URL") or None, os.environ.get("AWS_DEFAULT_REGION") or None)


def _s3_error(exc: Exception, uri: str) -> StorageError:
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            return NotFoundError(f"not found: {uri}")
        if code == "NoSuchBucket":
            return NotFoundError(f"bucket does not exist: {uri}")
        if code in ("AccessDenied", "403", "SignatureDoesNotMatch", "InvalidAccessKeyId"):
            return StorageError(f"S3 refused access to {uri} ({code}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")
        return StorageError(f"S3 error on {uri}: {code or exc}")
    if isinstance(exc, NoCredentialsError):
        return StorageError(f"no S3 credentials for {uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "the default AWS endpoint")
    return StorageError(f"cannot reach S3 at {endpoint} for {uri}: {type(exc).__name__}")


def _s3_call(uri: str, call, **kwargs):
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call(**kwargs)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, uri) from None


@functools.lru_cache(maxsize=1)
def _file_mode() -> int:
    """Mode for new files: what open() would give (0666 less the umask); mkstemp's is 0600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        loc = S3Location.parse(uri)
        client = s3_client()
        response = _s3_call(uri, client.get_object, Bucket=loc.bucket, Key=loc.key)
        return _s3_call(uri, response["Body"].read)
    try:
        return Path(uri).read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"not found: {uri}") from None
    except IsADirectoryError:
        raise StorageError(f"{uri} is a folder, not a file") from None
    except OSError as exc:
        raise StorageError(f"cannot read {uri}: {exc.strerror}") from None


def read_text(uri: str) -> str:
    data = read_bytes(uri)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise StorageError(f"{uri} is not UTF-8 text") from None


def write_bytes(uri: str, data: bytes) -> None:
    """Write atomically: the old content stays until the new is complete."""
    if is_s3(uri):
        loc = S3Location.parse(uri)
        _s3_call(uri, s3_client().put_object, Bucket=loc.bucket, Key=loc.key, Body=data)
        return
    path = Path(uri)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, _file_mode())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise StorageError(f"cannot write {uri}: {exc.strerror or exc}") from None


def delete(uri: str) -> None:
    """Remove a file; nothing to do if it is not there."""
    if is_s3(uri):
        loc = S3Location.parse(uri)
        _s3_call(uri, s3_client().delete_object, Bucket=loc.bucket, Key=loc.key)
        return
    try:
        Path(uri).unlink(missing_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot remove {uri}: {exc.strerror or exc}") from None


def create_exclusive(uri: str, data: bytes) -> bool:
    """Write ``uri`` only if it does not exist yet; False if it did. Used to claim a sweep id so
    that two sweeps started with the same id never merge."""
    if is_s3(uri):
        from botocore.exceptions import ClientError

        loc = S3Location.parse(uri)
        try:
            # A conditional PUT (If-None-Match: *) makes the check and the write one step.
            s3_client().put_object(Bucket=loc.bucket, Key=loc.key, Body=data, IfNoneMatch="*")
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise _s3_error(exc, uri) from None
        except Exception as exc:
            raise _s3_error(exc, uri) from None
    path = Path(uri)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            os.link(tmp, path)  # fails if the target exists: check and create in one step
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
    except OSError as exc:
        raise StorageError(f"cannot write {uri}: {exc.strerror or exc}") from None


def exists(uri: str) -> bool:
    if is_s3(uri):
        from botocore.exceptions import ClientError

        loc = S3Location.parse(uri)
        try:
            s3_client().head_object(Bucket=loc.bucket, Key=loc.key)
            return True
        except ClientError as exc:
            error = _s3_error(exc, uri)
            if isinstance(error, NotFoundError):
                return False
            raise error from None
        except Exception as exc:  # connection errors from botocore
            raise _s3_error(exc, uri) from None
    return Path(uri).exists()


def list_children(uri: str) -> list[str]:
    """Names directly under a folder/prefix (files and sub-folders), sorted; empty if none."""
    if is_s3(uri):
        loc = S3Location.parse(uri)
        prefix = loc.key.rstrip("/") + "/" if loc.key else ""
        names: set[str] = set()
        paginator = s3_client().get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=loc.bucket, Prefix=prefix, Delimiter="/")
        for page in _s3_call(uri, lambda: list(pages)):
            names.update(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []))
            names.update(o["Key"][len(prefix) :] for o in page.get("Contents", []))
        return sorted(n for n in names if n)
    path = Path(uri)
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def walk_files(uri: str) -> Iterator[str]:
    """Relative paths of every file below a folder/prefix."""
    for path, _ in walk_file_sizes(uri):
        yield path


def walk_file_sizes(uri: str) -> Iterator[tuple[str, int]]:
    """Relative path and size in bytes of every file below a folder/prefix (one listing on S3)."""
    if is_s3(uri):
        loc = S3Location.parse(uri)
        prefix = loc.key.rstrip("/") + "/"
        pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix)
        for page in _s3_call(uri, lambda: list(pages)):
            for obj in page.get("Contents", []):
                yield obj["Key"][len(prefix) :], int(obj["Size"])
        return
    root = Path(uri)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield str(path.relative_to(root)), path.stat().st_size


def reachable(uri: str) -> bool:
    """Whether the storage holding ``uri`` answers now: one request, no retries (a health
    probe, so a sweep can tell an outage from a slow write)."""
    if not is_s3(uri):
        return True
    from botocore.exceptions import BotoCoreError, ClientError

    client = _s3_client(os.environ.get("AWS_ENDPOINT_URL") or None, os.environ.get("AWS_DEFAULT_REGION") or None, 1)
    try:
        client.head_bucket(Bucket=S3Location.parse(uri).bucket)
        return True
    except ClientError:
        return True  # it answered, if only to refuse: not an outage
    except BotoCoreError:
        return False


def tune_path(uri: str) -> str:
    """Where Ray Tune keeps an experiment: an ``s3://`` URI as is (pyarrow then reads the same
    AWS_* variables, so no credentials are pickled into Tune's state), a local folder absolute."""
    return uri if is_s3(uri) else str(Path(uri).resolve())
