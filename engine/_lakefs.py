"""A small file store over ``pyarrow.fs``: the only way the registry touches files.

Everything goes through a :class:`pyarrow.fs.FileSystem` (local, or S3 with the endpoint
of :class:`engine.storage.Storage`), except :meth:`LakeStore.create_exclusive`, the one
operation the two spell differently: on a local filesystem a hard link, which fails
atomically when the target exists; on S3 a conditional put (:mod:`engine.s3_put`), which
the store refuses atomically when the object exists.
"""

from __future__ import annotations

import errno
import os
import uuid

import pyarrow as pa
import pyarrow.fs as pafs

from engine.errors import BadInputError
from engine.storage import S3, Storage, _s3_error, check_bucket, is_uri, local_copy


class LakeStore:
    """Files under one root, addressed by ``/``-separated paths relative to it."""

    def __init__(self, root: str, storage: Storage | None = None) -> None:
        self.uri = root.rstrip("/") if is_uri(root) else root
        self.storage = storage or Storage.of(None)
        try:
            if is_uri(root):
                check_bucket(root, self.storage, "registry")
                self.fs, self.root = self.storage.filesystem(), root[len(S3) :].rstrip("/")
            elif "://" in root:
                self.fs, self.root = pafs.FileSystem.from_uri(root)
            else:
                self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(root)
        except (pa.ArrowException, ValueError) as exc:
            raise BadInputError(f"registry {root}: {exc}") from None
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, rel: str) -> str:
        return f"{self.root.rstrip('/')}/{rel}" if rel else self.root

    def exists(self, rel: str) -> bool:
        try:
            return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound
        except OSError as exc:
            raise self._error(rel, exc) from None

    def read_bytes(self, rel: str) -> bytes:
        try:
            with self.fs.open_input_stream(self.path(rel)) as fh:
                return fh.read()
        except OSError as exc:
            raise self._error(rel, exc) from None

    def list_names(self, rel: str) -> list[str]:
        """Names directly under ``rel`` (empty when it does not exist), sorted."""
        if self.is_local:
            # Not Arrow's listing: when the directory is created while it lists (a first
            # registration of a name racing another), Arrow finds it gone, then present,
            # and raises instead of answering "empty" (seen with 8 threads registering).
            try:
                return sorted(os.listdir(self.path(rel)))
            except FileNotFoundError:
                return []
            except OSError as exc:
                raise self._error(rel, exc) from None
        selector = pafs.FileSelector(self.path(rel), allow_not_found=True)
        try:
            return sorted(info.base_name for info in self.fs.get_file_info(selector))
        except OSError as exc:
            raise self._error(rel, exc) from None

    def write_atomic(self, rel: str, data: bytes) -> None:
        """Replace ``rel``: readers see the old or the new content, never half."""
        if not self.is_local:  # one PUT: the object appears whole when it completes
            try:
                with self.fs.open_output_stream(self.path(rel)) as fh:
                    fh.write(data)
            except OSError as exc:
                raise self._error(rel, exc) from None
            return
        tmp = self._write_temp(rel, data)
        self.fs.move(tmp, self.path(rel))

    def write_if_absent(self, rel: str, data: bytes) -> None:
        """Write content-addressed data once; a second writer of the same bytes is a no-op."""
        if not self.exists(rel):
            self.write_atomic(rel, data)

    def create_exclusive(self, rel: str, data: bytes) -> bool:
        """Create ``rel`` with ``data`` unless it exists; False if someone else created it."""
        if not self.is_local:
            if "://" in self.uri and not is_uri(self.uri):
                raise BadInputError(f"registry {self.uri}: only local and s3:// registries")
            from engine.s3_put import put_if_absent

            return put_if_absent(self.storage, S3 + self.path(rel), data)
        tmp = self._write_temp(rel, data)
        try:
            os.link(tmp, self.path(rel))
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise
        finally:
            os.unlink(tmp)
        return True

    def local_file(self, rel: str) -> str:
        """A local path of ``rel`` for loaders that read files: from S3, a fresh download
        into the cache (the caller checks its sha256 against the registry's, every time)."""
        if self.is_local:
            return self.path(rel)
        if not is_uri(self.uri):
            raise BadInputError(f"registry {self.uri}: only local and s3:// registries")
        return str(local_copy(S3 + self.path(rel), self.storage))

    def _error(self, rel: str, exc: OSError) -> BadInputError:
        return BadInputError(f"registry {self.uri}: {rel}: {_s3_error(exc)}")

    def _write_temp(self, rel: str, data: bytes) -> str:
        parent, _, name = self.path(rel).rpartition("/")
        self.fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}.tmp"
        with self.fs.open_output_stream(tmp) as fh:
            fh.write(data)
        if self.is_local:  # durable before it becomes visible under its real name
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return tmp
