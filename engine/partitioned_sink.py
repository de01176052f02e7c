"""A partitioned Parquet sink (hive layout) and its commit: a manifest, then renames.

Layout::

    <sink>/<col>=<v>/[<col2>=<v2>/]<run_id>/part-<task>.parquet      committed rows
    <sink>/_lakescore/partitioning.json                              the partition columns
    <sink>/_lakescore/staging/<run_id>/data/<col>=<v>/.../<run_id>/part-<task>.parquet
    <sink>/_lakescore/staging/<run_id>/commit.json                   the commit manifest

Readers use hive partitioning (``pyarrow.dataset.dataset(sink, partitioning="hive")``,
Polars and DuckDB detect it, Spark reads it as is): partition columns are in the paths.

**Append.** The commit point is writing ``commit.json``: it lists one rename per partition
the run wrote (``data/<P>/<run_id>`` -> ``<sink>/<P>/<run_id>``). The renames follow, and a
process that dies among them leaves the manifest, from which the next invocation of the
job finishes them (roll forward); a run is never committed twice. Each partition's rows
appear in one rename; a reader that lists the sink *during* the commit may see some of
the run's partitions before others (for all-or-nothing visibility use ``--format delta``).

**Backfill** (``--overwrite-partition``). The run's rows all lie in one partition
directory ``<sink>/<P>``. The staged ``data/<P>`` is swapped with it in one atomic
directory exchange (Linux ``renameat2(RENAME_EXCHANGE)``): readers see the old partition
or the new one, never a mix or nothing; no other directory is touched. The old partition
ends in the staging area, removed with it after the run record is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine._fsutil import atomic_write_json, fsync_dir, read_json
from engine.errors import BadInputError, ExecutionError
from engine.partitions import Overwrite, exchange_dirs
from engine.staging import RunStaging, Sink

PARTITIONING_FILE = "partitioning.json"


def recorded_partitioning(sink: Path) -> list[str] | None:
    path = sink / "_lakescore" / PARTITIONING_FILE
    return list(read_json(path)["columns"]) if path.exists() else None


class PartitionedSink(Sink):
    def __init__(self, root: str | Path, names: tuple[str, ...], overwrite: Overwrite | None):
        super().__init__(root)
        self.names = names
        self.overwrite = overwrite

    def check(self) -> None:
        """The sink is empty or partitioned by the same columns (never a mix of layouts)."""
        recorded = recorded_partitioning(self.root)
        if recorded is not None and recorded != list(self.names):
            raise BadInputError(
                f"sink {self.root} is partitioned by {recorded}, not {list(self.names)}"
            )
        if recorded is None and self.root.is_dir():
            for entry in self.root.iterdir():
                if entry.is_dir() and not entry.name.startswith(("_", ".")):
                    raise BadInputError(
                        f"sink {self.root} holds unpartitioned runs ({entry.name}); "
                        "write partitioned runs to a new sink"
                    )

    def is_committed(self, run_id: str) -> bool:
        if (self.staging_root / run_id / "commit.json").exists():
            return True  # past the commit point: the next invocation rolls it forward
        record = self.read_run_record(run_id)
        return record is not None and "partitions" in record

    def staging(self, run_id: str) -> PartitionedRunStaging:
        return PartitionedRunStaging(self, run_id)


class PartitionedRunStaging(RunStaging):
    sink: PartitionedSink

    @property
    def manifest_path(self) -> Path:
        return self.dir / "commit.json"

    def commit(self, expected_parts: set[str], run_record: dict[str, Any]) -> None:
        if not self.manifest_path.exists():
            self._write_manifest(expected_parts)
        manifest = read_json(self.manifest_path)
        for op in manifest["ops"]:
            self._apply(op)
        self.finish({**run_record, "partitions": manifest["partitions"],
                     "overwrote": manifest.get("overwrote")})  # fmt: skip

    def _write_manifest(self, expected: set[str]) -> None:
        present = {
            p.relative_to(self.data_dir).as_posix()
            for p in self.data_dir.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        }
        if not expected <= present:
            missing = sorted(expected - present)[:3]
            raise ExecutionError(f"run {self.run_id}: staged parts missing: {missing}")
        for stray in self.data_dir.rglob(".*.tmp"):  # temporary files of killed writers
            stray.unlink()
        for stale in present - expected:  # of tasks an earlier attempt planned, this one not
            (self.data_dir / stale).unlink()
        leaves = sorted({Path(p).parent.parent.as_posix() for p in expected})
        overwrite = self.sink.overwrite
        ops: list[dict[str, str]]
        if overwrite is not None:
            target = overwrite.path
            outside = [p for p in leaves if p != target and not p.startswith(target + "/")]
            if outside:
                raise ExecutionError(f"run {self.run_id}: rows outside {target}: {outside[0]}")
            src = self.data_dir / target
            src.mkdir(parents=True, exist_ok=True)  # a backfill without rows empties it
            (src / self._marker).touch()
            ops = [{"op": "exchange", "src": target, "dst": target}]
        else:
            ops = [{"op": "move", "src": f"{p}/{self.run_id}", "dst": f"{p}/{self.run_id}"}
                   for p in leaves]  # fmt: skip
        meta = self.sink.meta / PARTITIONING_FILE
        if not meta.exists():
            atomic_write_json(meta, {"columns": list(self.sink.names)})
        atomic_write_json(
            self.manifest_path,
            {
                "ops": ops,
                "partitions": leaves,
                "overwrote": overwrite.path if overwrite else None,
            },
        )

    @property
    def _marker(self) -> str:
        """A hidden file (readers skip it) that says which run a partition directory is."""
        return f".lakescore-run-{self.run_id}"

    def _apply(self, op: dict[str, str]) -> None:
        src = self.data_dir / op["src"]
        dst = self.sink.root / op["dst"]
        if op["op"] == "move":
            if not src.exists():
                if dst.exists():
                    return  # done before a crash
                raise ExecutionError(f"run {self.run_id}: {src} vanished before the commit")
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.rename(src, dst)
            fsync_dir(dst.parent)
            return
        if (dst / self._marker).exists():
            return  # swapped before a crash
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            exchange_dirs(src, dst)
        else:
            os.rename(src, dst)
        fsync_dir(dst.parent)
