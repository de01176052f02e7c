"""A Parquet source on object storage: list the objects under a prefix, read footers.

The same rules as a local source (:mod:`engine.source`): names starting with ``_`` or
``.`` are skipped at every level, files are sorted (stable task ids), only footers are read.

A footer is a round trip to the store, tens of milliseconds on S3, so footers are read
:data:`FOOTERS_AT_ONCE` at a time by one client (its connections reused), with the size
the listing gave (no request asks for it again). On moto's S3 behind a proxy that holds
each request back 20 ms (``tests/jobs/latency_proxy.py``), planning 300 objects took
17.3 s one footer at a time with a size request and a new client each, and 2.0-2.2 s now:
moto's own CPU (one Python process on the same 2 cores) is most of that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pyarrow as pa

from engine.errors import BadInputError
from engine.filters import Expr, columns, simplify
from engine.plan import row_groups_passing
from engine.source import SourceFile, hive_partition, one_line
from engine.storage import S3, Storage, _s3_error, key


def list_objects(source: str, storage: Storage) -> list[tuple[str, str, int, int]]:
    """``(uri, relpath, size, mtime_ns)`` of every data object of ``source``."""
    from pyarrow import fs

    s3 = storage.filesystem()
    root = key(source)
    try:
        info = s3.get_file_info(root)
        if info.type == fs.FileType.File:
            return [(source, root.rsplit("/", 1)[-1], info.size, info.mtime_ns or 0)]
        if info.type == fs.FileType.NotFound:
            raise BadInputError(f"source not found: {source}")
        listing = s3.get_file_info(fs.FileSelector(root, recursive=True))
    except OSError as exc:
        raise BadInputError(f"source {source}: {_s3_error(exc)}") from None
    out = []
    for item in listing:
        if item.type != fs.FileType.File:
            continue
        rel = item.path[len(root) + 1 :]
        if any(part.startswith(("_", ".")) for part in rel.split("/")):
            continue
        out.append((S3 + item.path, rel, item.size, item.mtime_ns or 0))
    return sorted(out, key=lambda o: o[1])


T = TypeVar("T")
R = TypeVar("R")

#: Footers read from an object store at once (each a request of tens of milliseconds).
FOOTERS_AT_ONCE = 16

#: What a listing says of an object: ``(uri, relpath, size, mtime_ns, partition)``, the
#: partition ``None`` where the path's hive directories say it.
Listed = tuple[str, str, int, int, "dict[str, str | None] | None"]


def footers_at_once(read: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[read(item) for item in items]``, :data:`FOOTERS_AT_ONCE` calls at a time (each a
    footer: a round trip to the store); the first item in order whose call raises is the
    error."""
    if len(items) <= 1:
        return [read(item) for item in items]
    with ThreadPoolExecutor(min(FOOTERS_AT_ONCE, len(items))) as pool:
        return list(pool.map(read, items))


def read_remote_footers(
    objects: Sequence[Listed], storage: Storage, filter: Expr | None = None
) -> list[SourceFile]:
    """The footers of ``objects``, in their order (see :func:`footers_at_once`); with a
    ``filter``, each file's row groups it keeps as well (:func:`read_remote_footer`)."""
    # One client for all: its connections are reused (a new one is a TCP and TLS handshake).
    filesystem = storage.filesystem()
    return footers_at_once(
        lambda o: read_remote_footer(*o, filesystem=filesystem, filter=filter), objects
    )


def read_remote_footer(
    uri: str,
    relpath: str,
    size: int,
    mtime_ns: int,
    partition: dict[str, str | None] | None = None,
    *,
    filesystem: Any,
    filter: Expr | None = None,
) -> SourceFile:
    """What the object's footer says, read with ``filesystem`` (the store's client); with
    a ``filter``, also the row groups whose statistics may hold rows that pass it."""
    import pyarrow.dataset as ds

    try:
        # A fragment of a known size reads the footer in one request (a file opened by
        # path first asks the store for its size).
        piece = ds.ParquetFileFormat().make_fragment(
            key(uri), filesystem=filesystem, file_size=size or None
        )
        meta = piece.metadata
        schema = meta.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as exc:
        raise BadInputError(f"{uri}: not a readable Parquet file ({one_line(exc)})") from None
    partition = hive_partition(relpath) if partition is None else partition
    return SourceFile(
        path=uri,
        relpath=relpath,
        size=size,
        mtime_ns=mtime_ns,
        row_group_rows=tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups)),
        schema=schema,
        partition=partition,
        row_groups_kept=None if filter is None else _kept(piece, schema, filter, partition),
    )


def _kept(
    piece: Any, schema: pa.Schema, filter: Expr, partition: dict[str, str | None]
) -> tuple[str, frozenset[int]] | None:
    """The row groups of ``piece`` whose statistics may hold rows that pass what is left
    of ``filter`` on this file, decided by Arrow as the planner would, from the footer
    just read: the planner would read it again, a second round trip per object. None
    where the planner must decide (a filter column the file lacks, a filter Arrow
    refuses: it names the error, the first file's in order)."""
    rest = simplify(filter, partition)
    if isinstance(rest, bool) or not columns(rest) <= set(schema.names):
        return None
    try:
        kept = row_groups_passing(piece, rest, schema)
    except (pa.ArrowException, TypeError):
        return None
    return str(rest), frozenset(kept)


def sizes(storage: Storage, uris: list[str]) -> dict[str, tuple[int, int]]:
    """``(size, mtime_ns)`` of each object (one listing call for all of them)."""
    if not uris:
        return {}
    try:
        infos = storage.filesystem().get_file_info([key(u) for u in uris])
    except OSError as exc:
        raise BadInputError(f"source {uris[0]}: {_s3_error(exc)}") from None
    out = {}
    for uri, info in zip(uris, infos, strict=True):
        if info.size is None:
            raise BadInputError(f"{uri}: listed in the Delta log but not found")
        out[uri] = (info.size, info.mtime_ns or 0)
    return out
