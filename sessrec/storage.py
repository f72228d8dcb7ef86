"""Every read and write of sessrec goes through here: local paths and ``s3://bucket/prefix``.

Writes are atomic: a local file is written to a temporary name in the same folder and renamed
over the target; an S3 object is one PUT (or one completed multipart upload), which S3 makes
visible all at once. Either way a reader sees the old content or the new, never half of it.
S3 settings come from the standard variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION), so AWS, MinIO and other compatible stores work.

Over 400 lines: local files and S3 side by side for every operation (read, atomic write,
exclusive create, versioned replace, listing, delete), so that both behave the same.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessrec.errors import NotFoundError, StorageError

S3_SCHEME = "s3://"
#: The most a document may hold: a sweep spec, a settings file, a manifest, any YAML or JSON file
#: sessrec parses whole. Read at most one byte more; larger ones are refused unparsed.
MAX_DOCUMENT_BYTES = 1 << 20
MAX_DOCUMENT_TEXT = "1 MiB"
#: Retries of one S3 request (botocore's standard mode backs off exponentially with jitter).
S3_MAX_ATTEMPTS = 8


def is_s3(uri: str) -> bool:
    """Whether ``uri`` is an ``s3://`` URI rather than a local path."""
    return uri.startswith(S3_SCHEME)


def join(base: str, *parts: str) -> str:
    """``base`` and ``parts`` joined: with '/' for an s3:// URI (the parts' outer slashes trimmed),
    else as a local path."""
    if is_s3(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base, *parts))


@dataclass(frozen=True)
class S3Location:
    """An s3:// URI as its bucket and key."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        """The bucket and key of ``s3://bucket/key``; no bucket, or a '.' or '..' segment in the
        key, is a StorageError."""
        rest = uri[len(S3_SCHEME) :]
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise StorageError(f"no bucket in {uri!r}")
        check_s3_key(uri, key)
        return cls(bucket, key)


def check_s3_key(uri: str, key: str) -> None:
    """An S3 key is a name, not a path: 'a/../b' is a different object from 'b', so a key with
    '.' or '..' segments would read and write where no local reading of the URI would expect."""
    for segment in key.split("/"):
        if segment in (".", ".."):
            raise StorageError(f"invalid S3 URI {uri!r}: an S3 key may not hold {segment!r} segments")


@functools.cache
def _s3_client(endpoint: str | None, region: str | None, max_attempts: int = S3_MAX_ATTEMPTS) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=5 if max_attempts > 1 else 2,
        read_timeout=60 if max_attempts > 1 else 5,
        s3={"addressing_style": "path"} if endpoint else {},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region, config=config)


#: What botocore accepts as a region name (it refuses others with a multi-line-prone error).
_REGION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")


def s3_settings() -> tuple[str | None, str | None]:
    """AWS_ENDPOINT_URL and AWS_DEFAULT_REGION, checked: a bad one is one clear line naming the
    variable, before any client is made."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    region = os.environ.get("AWS_DEFAULT_REGION") or None
    if endpoint is not None:
        parsed = urllib.parse.urlsplit(endpoint.strip()) if endpoint.isprintable() else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise StorageError(f"AWS_ENDPOINT_URL={endpoint!r} is not an http(s) URL: give e.g. http://127.0.0.1:9000")
    if region is not None and not _REGION.fullmatch(region):
        raise StorageError(f"AWS_DEFAULT_REGION={region!r} is not a region name: letters, digits and '-' only")
    return endpoint, region


def s3_client() -> Any:
    """A client configured from the current AWS_* variables (cached per endpoint and region)."""
    return _s3_client(*s3_settings())


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


def _s3_call(uri: str, call: Callable[..., Any], **kwargs: Any) -> Any:
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


def read_bytes(uri: str, limit: int | None = None, what: str | None = None) -> bytes:
    """The content of a file or object. ``limit``: refuse one larger than that many bytes
    (the layout's JSON and YAML files always have MAX_DOCUMENT_BYTES). A local path must be a regular file:
    a device (/dev/zero), a FIFO or a socket is refused before anything is read from it."""
    name = what or uri
    if limit is None and uri.rstrip("/").rpartition("/")[2] in _STORED_DOCUMENTS:
        limit = MAX_DOCUMENT_BYTES
    if is_s3(uri):
        loc = S3Location.parse(uri)
        client = s3_client()
        response = _s3_call(uri, client.get_object, Bucket=loc.bucket, Key=loc.key)
        if limit is not None:
            if int(response.get("ContentLength") or 0) > limit:
                raise StorageError(_too_large(name, limit))
            data = _s3_call(uri, response["Body"].read, amt=limit + 1)
            if len(data) > limit:
                raise StorageError(_too_large(name, limit))
            return data
        return _s3_call(uri, response["Body"].read)
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not wait; fstat then refuses it.
        fd = os.open(uri, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise NotFoundError(f"not found: {name}") from None
    except IsADirectoryError:
        raise StorageError(f"{name} is a folder, not a file") from None
    except OSError as exc:
        raise StorageError(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise StorageError(f"{name} is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise StorageError(f"{name} is not a regular file (a device, pipe or socket): give a file")
        if limit is not None and info.st_size > limit:
            raise StorageError(_too_large(name, limit))
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read() if limit is None else handle.read(limit + 1)
    except OSError as exc:
        raise StorageError(f"cannot read {name}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if limit is not None and len(data) > limit:  # grew while being read
        raise StorageError(_too_large(name, limit))
    return data


#: File names that are bounded by MAX_DOCUMENT_BYTES wherever they are read: sessrec.layout names
#: its JSON and YAML records here (a user's data file, e.g. sessions.json, is data, of any size).
_STORED_DOCUMENTS: set[str] = set()


def bound_documents(*names: str) -> None:
    """Read files of these names (in any folder) at most MAX_DOCUMENT_BYTES at a time."""
    _STORED_DOCUMENTS.update(names)


def _too_large(name: str, limit: int) -> str:
    size = MAX_DOCUMENT_TEXT if limit == MAX_DOCUMENT_BYTES else f"{limit} bytes"
    return f"{name} is larger than the {size} limit for such files: refused unread"


def read_text(uri: str, limit: int | None = None, what: str | None = None) -> str:
    """The content of a file or object as UTF-8 text (``limit`` and ``what`` as for
    :func:`read_bytes`); other bytes are a StorageError."""
    data = read_bytes(uri, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise StorageError(f"{what or uri} is not UTF-8 text") from None


def write_bytes(uri: str, data: bytes) -> None:
    """Write atomically: the old content stays until the new is complete."""
    if is_s3(uri):
        loc = S3Location.parse(uri)
        _s3_call(uri, s3_client().put_object, Bucket=loc.bucket, Key=loc.key, Body=data)
        return
    path = Path(uri)
    try:
        _make_folder(uri, path.parent)
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


#: Local storage roots in use (as given, and resolved): writes under one stay inside it.
_ROOTS: dict[str, str] = {}


def confine_writes(root: str) -> None:
    """Writes below the local folder ``root`` must land inside it: a symlink in the root (to a
    folder elsewhere) is not followed by a write. The root itself may be a link (the user's
    choice); links inside it are another user's, or an accident. Called with the settings."""
    if not is_s3(root):
        _ROOTS[os.path.abspath(root)] = os.path.realpath(root)


def _check_inside_root(uri: str, folder: Path) -> None:
    """Refuse a write whose folder resolves outside the storage root it is written under."""
    lexical = os.path.abspath(folder)
    for root, real_root in _ROOTS.items():
        if lexical == root or lexical.startswith(root.rstrip(os.sep) + os.sep):
            real = os.path.realpath(lexical)  # the existing part resolved, links followed
            if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
                raise StorageError(
                    f"cannot write {uri}: it resolves to {real}, outside the storage root {root} "
                    "(a symlink in the root)"
                )


def _make_folder(uri: str, folder: Path) -> None:
    """The folder a local file goes in, made if missing; a file or device in its place (--to
    /dev/null) is one clear line, not mkdir's 'File exists'."""
    _check_inside_root(uri, folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise StorageError(f"cannot write {uri}: {blocker} is not a folder") from None


def delete(uri: str) -> None:
    """Remove a file; nothing to do if it is not there."""
    if is_s3(uri):
        loc = S3Location.parse(uri)
        _s3_call(uri, s3_client().delete_object, Bucket=loc.bucket, Key=loc.key)
        return
    _check_inside_root(uri, Path(uri).parent)
    try:
        Path(uri).unlink(missing_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot remove {uri}: {exc.strerror or exc}") from None


def delete_below(uri: str, paths: list[str]) -> None:
    """Remove these files below a folder/prefix (relative paths as ``walk_file_sizes`` gives them);
    locally, then the folders below ``uri`` left empty (a folder still holding anything stays)."""
    if is_s3(uri):
        loc = S3Location.parse(uri)
        prefix = loc.key.rstrip("/") + "/"
        client = s3_client()
        for start in range(0, len(paths), 1000):  # S3's most keys per request
            keys = [{"Key": prefix + path} for path in paths[start : start + 1000]]
            _s3_call(uri, client.delete_objects, Bucket=loc.bucket, Delete={"Objects": keys, "Quiet": True})
        return
    for path in paths:
        delete(join(uri, path))
    folders = {os.path.dirname(path) for path in paths if os.path.dirname(path)}
    every = {str(parent) for path in folders for parent in (Path(path), *Path(path).parents) if str(parent) != "."}
    for folder in sorted(every, key=lambda name: name.count(os.sep), reverse=True):
        try:
            os.rmdir(join(uri, folder))
        except OSError:
            pass  # not empty (or gone): left as it is
    try:
        os.rmdir(uri)
    except OSError:
        pass


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
        _make_folder(uri, path.parent)
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


#: S3 error codes of a conditional request whose condition did not hold.
_PRECONDITION_CODES = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def read_versioned(uri: str) -> tuple[bytes, str]:
    """A small file's content and its version: the S3 ETag, or locally the content's sha256.
    ``replace_if`` writes it only while it still has that version. ``NotFoundError`` if absent."""
    if is_s3(uri):
        loc = S3Location.parse(uri)
        response = _s3_call(uri, s3_client().get_object, Bucket=loc.bucket, Key=loc.key)
        return _s3_call(uri, response["Body"].read), str(response.get("ETag", ""))
    import hashlib

    data = read_bytes(uri, MAX_DOCUMENT_BYTES)
    return data, hashlib.sha256(data).hexdigest()


def replace_if(uri: str, data: bytes, version: str) -> bool:
    """Replace a file only if it still has ``version`` (from ``read_versioned``): a compare-and-swap.
    S3: a PUT with ``If-Match`` on the ETag (a store that answers NotImplemented gets a compare, then
    an unconditional PUT: a short race). Local: the compare and the atomic rename under an exclusive
    ``flock`` of a lock file beside it, which every ``replace_if`` of that file takes."""
    if is_s3(uri):
        from botocore.exceptions import ClientError

        loc = S3Location.parse(uri)
        try:
            s3_client().put_object(Bucket=loc.bucket, Key=loc.key, Body=data, IfMatch=version)
            return True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in _PRECONDITION_CODES or code in ("NoSuchKey", "404"):
                return False
            if code not in ("NotImplemented", "501"):
                raise _s3_error(exc, uri) from None
        except Exception as exc:
            raise _s3_error(exc, uri) from None
        try:  # no If-Match on this store: compare, then write
            if read_versioned(uri)[1] != version:
                return False
        except NotFoundError:
            return False
        write_bytes(uri, data)
        return True
    import fcntl
    import hashlib

    path = Path(uri)
    _make_folder(uri, path.parent)
    try:
        lock = os.open(
            path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), _file_mode()
        )
    except OSError as exc:
        raise StorageError(f"cannot write {uri}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            current = hashlib.sha256(read_bytes(uri, MAX_DOCUMENT_BYTES)).hexdigest()
        except NotFoundError:
            return False
        if current != version:
            return False
        write_bytes(uri, data)
        return True
    finally:
        os.close(lock)  # releases the lock


def exists(uri: str) -> bool:
    """Whether the file or object ``uri`` exists (locally, a folder too); any failure other than not
    found is a StorageError."""
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
    try:
        os.stat(uri)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise StorageError(f"cannot read {uri}: {exc.strerror or exc}") from None


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
    try:
        return sorted(os.listdir(uri))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise StorageError(f"cannot list {uri}: {exc.strerror or exc}") from None


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
    try:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                yield str(path.relative_to(root)), path.stat().st_size
    except OSError as exc:
        raise StorageError(f"cannot list {uri}: {exc.strerror or exc}") from None


def reachable(uri: str) -> bool:
    """Whether the storage holding ``uri`` answers now: one request, no retries (a health
    probe, so a sweep can tell an outage from a slow write)."""
    if not is_s3(uri):
        return True
    from botocore.exceptions import BotoCoreError, ClientError

    client = _s3_client(*s3_settings(), 1)
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
