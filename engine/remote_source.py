"""A Parquet source on object storage: list the objects under a prefix, read footers.

The same rules as a local source (:mod:`engine.source`): names starting with ``_`` or
``.`` are skipped at every level, files are sorted (stable task ids), only footers are read.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import BadInputError
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


def read_remote_footer(
    uri: str,
    relpath: str,
    size: int,
    mtime_ns: int,
    storage: Storage,
    partition: dict[str, str | None] | None = None,
) -> SourceFile:
    try:
        with storage.filesystem().open_input_file(key(uri)) as fh:
            meta = pq.ParquetFile(fh).metadata
        schema = meta.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as exc:
        raise BadInputError(f"{uri}: not a readable Parquet file ({one_line(exc)})") from None
    return SourceFile(
        path=uri,
        relpath=relpath,
        size=size,
        mtime_ns=mtime_ns,
        row_group_rows=tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups)),
        schema=schema,
        partition=hive_partition(relpath) if partition is None else partition,
    )


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
