"""A small file store over ``pyarrow.fs``: the only way the registry touches files.

Everything goes through a :class:`pyarrow.fs.FileSystem`, so a lake URI (``s3://...``)
needs no change here except :meth:`LakeStore.create_exclusive`, the one operation object
stores spell differently (a conditional put). On a local filesystem it is a hard link,
which fails atomically when the target exists.
"""

from __future__ import annotations

import errno
import os
import uuid

import pyarrow as pa
import pyarrow.fs as pafs

from engine.errors import BadInputError


class LakeStore:
    """Files under one root, addressed by ``/``-separated paths relative to it."""

    def __init__(self, root: str) -> None:
        self.uri = root
        try:
            if "://" in root:
                self.fs, self.root = pafs.FileSystem.from_uri(root)
            else:
                self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(root)
        except (pa.ArrowException, ValueError) as exc:
            raise BadInputError(f"registry {root}: {exc}") from None
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, rel: str) -> str:
        return f"{self.root.rstrip('/')}/{rel}" if rel else self.root

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as fh:
            return fh.read()

    def list_names(self, rel: str) -> list[str]:
        """Names directly under ``rel`` (empty when it does not exist), sorted."""
        selector = pafs.FileSelector(self.path(rel), allow_not_found=True)
        return sorted(info.base_name for info in self.fs.get_file_info(selector))

    def write_atomic(self, rel: str, data: bytes) -> None:
        """Replace ``rel``: readers see the old or the new content, never half."""
        tmp = self._write_temp(rel, data)
        self.fs.move(tmp, self.path(rel))  # a rename locally; S3 puts are atomic anyway

    def write_if_absent(self, rel: str, data: bytes) -> None:
        """Write content-addressed data once; a second writer of the same bytes is a no-op."""
        if not self.exists(rel):
            self.write_atomic(rel, data)

    def create_exclusive(self, rel: str, data: bytes) -> bool:
        """Create ``rel`` with ``data`` unless it exists; False if someone else created it."""
        if not self.is_local:
            # Object stores need a conditional put (If-None-Match) here; until then,
            # check-then-write, which two simultaneous writers can both pass.
            if self.exists(rel):
                return False
            self.write_atomic(rel, data)
            return True
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
        """A local path of ``rel`` for loaders that read files (remote stores: TODO cache)."""
        if not self.is_local:
            raise BadInputError(f"registry {self.uri}: only local registries can load models yet")
        return self.path(rel)

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
