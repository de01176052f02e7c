"""Object storage: ``s3://`` URIs through pyarrow's S3FileSystem and deltalake's options.

Credentials are never taken as arguments, stored or logged: pyarrow (the AWS SDK) and
deltalake (object_store) read them from the standard AWS environment variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``) or profile. What
this module carries is where to connect: an S3-compatible endpoint (``AWS_ENDPOINT_URL``,
or ``endpoint_url`` in the job spec's ``[storage]`` table), the region and whether plain
HTTP is allowed (implied by an ``http://`` endpoint).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import BadInputError

S3 = "s3://"
_STORAGE_KEYS = ("endpoint_url", "region")


def is_uri(path: str | os.PathLike[str]) -> bool:
    return str(path).startswith(S3)


@dataclass(frozen=True)
class Storage:
    """Where object storage is (never who: credentials come from the environment)."""

    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def of(cls, table: dict[str, Any] | None) -> Storage:
        """From the job spec's ``[storage]`` table, else ``AWS_ENDPOINT_URL``/``AWS_REGION``."""
        table = dict(table or {})
        unknown = sorted(set(table) - set(_STORAGE_KEYS))
        if unknown:
            raise BadInputError(
                f"storage: unknown key {unknown[0]!r} (credentials come from the AWS "
                "environment variables or profile, never from the job spec)"
            )
        for key, value in table.items():
            if not isinstance(value, str):
                raise BadInputError(f"storage: key {key!r} must be str, got {value!r}")
        return cls(
            endpoint_url=table.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL"),
            region=table.get("region")
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION"),
        )

    def filesystem(self) -> Any:
        from pyarrow import fs

        kwargs: dict[str, Any] = {"connect_timeout": 5, "request_timeout": 30}
        if self.endpoint_url:
            scheme, _, host = self.endpoint_url.partition("://")
            kwargs.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
        if self.region:
            kwargs["region"] = self.region
        return fs.S3FileSystem(**kwargs)

    def delta_options(self) -> dict[str, str]:
        options: dict[str, str] = _profile_credentials()
        if self.endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        if self.region:
            options["AWS_REGION"] = self.region
        return options


def _profile_credentials() -> dict[str, str]:
    """The keys of ``$AWS_PROFILE``, for deltalake only, in memory only.

    pyarrow and boto3 read AWS profiles themselves; deltalake 1.6 does not (with keys only
    in a profile it asks the EC2 metadata service, and fails). So when the environment
    names a profile and holds no keys, botocore (the ``s3`` extra) resolves the profile
    and its keys go into the storage options of the call, never into a file or a log line.
    """
    profile = os.environ.get("AWS_PROFILE")
    if not profile or os.environ.get("AWS_ACCESS_KEY_ID"):
        return {}
    try:
        import botocore.exceptions
        import botocore.session
    except ImportError:
        return {}  # deltalake falls back to its own chain
    try:
        credentials = botocore.session.Session(profile=profile).get_credentials()
    except botocore.exceptions.ProfileNotFound:
        raise BadInputError(f"AWS_PROFILE {profile!r}: no such profile") from None
    if credentials is None:
        return {}
    frozen = credentials.get_frozen_credentials()
    options = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
    if frozen.token:
        options["AWS_SESSION_TOKEN"] = frozen.token
    return options


def key(uri: str) -> str:
    """``bucket/key`` of ``s3://bucket/key`` (pyarrow's path on an S3FileSystem)."""
    return uri[len(S3) :].rstrip("/")


def check_bucket(uri: str, storage: Storage, what: str) -> None:
    """The bucket of ``uri`` exists and the endpoint answers: else bad input, one line."""
    from pyarrow import fs

    bucket = key(uri).split("/", 1)[0]
    try:
        info = storage.filesystem().get_file_info(bucket)
    except OSError as exc:
        raise BadInputError(f"{what} {uri}: {_s3_error(exc)}") from None
    if info.type == fs.FileType.NotFound:
        raise BadInputError(f"{what} {uri}: bucket {bucket!r} not found")


#: what stores answer to unknown keys or wrong secrets (HEAD requests carry no body)
_DENIED = ("ACCESS_DENIED", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")


def _s3_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    for marker in ("AWS Error", "Could not connect"):
        if marker in text:
            text = text[text.index(marker) :]
            break
    text = text[:200]
    if any(d in text for d in _DENIED):
        text += " (check the credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
    return text


def local_copy(uri: str, storage: Storage) -> Path:
    """Download an object (a model) to the local cache; the caller checks its sha256."""
    base = Path(os.environ.get("LAKESCORE_CACHE_DIR", Path.home() / ".cache" / "lakescore"))
    name = uri.rsplit("/", 1)[-1]
    dest = base / "downloads" / hashlib.sha256(uri.encode()).hexdigest()[:16] / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{name}.{os.getpid()}.tmp")
    try:
        with storage.filesystem().open_input_stream(key(uri)) as src, open(tmp, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
        raise BadInputError(f"model {uri}: not found") from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BadInputError(f"model {uri}: {_s3_error(exc)}") from None
    os.replace(tmp, dest)
    return dest


def state_dir(uri: str) -> Path:
    """The local directory that holds an S3 sink's staging records (object storage has no
    lock and no rename; the run's data parts still go to the bucket)."""
    base = Path(os.environ.get("LAKESCORE_STATE_DIR", Path.home() / ".cache" / "lakescore"))
    return base / "sinks" / hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:16]


def fs_and_path(path: str, storage: Storage | None) -> tuple[Any, str]:
    """The pyarrow filesystem and its path for a local path or an ``s3://`` URI."""
    from pyarrow import fs

    if is_uri(path):
        return (storage or Storage.of(None)).filesystem(), key(path)
    return fs.LocalFileSystem(), os.path.abspath(path)


def open_parquet(path: str, storage: Storage | None) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` of a local file or an object."""
    import pyarrow.parquet as pq

    if not is_uri(path):
        return pq.ParquetFile(path)
    filesystem, where = fs_and_path(path, storage)
    return pq.ParquetFile(filesystem.open_input_file(where))
