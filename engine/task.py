"""What a worker does with one :class:`~engine.plan.ScoreTask`.

Stream the task's row groups as record batches (only the needed columns), build the
feature matrix, score it, profile it, and write one Parquet part named by the task id
into the run's staging area (one per output partition), then a small task record beside
it; a profile-only run (``write=False``) writes neither. Only the record's contents travel back:
score data never passes through the driver. A retried task overwrites its own part.

The stages overlap (:mod:`engine.pipeline`): a read-ahead thread decodes the next batch,
builds its matrix and profiles its features while the kernel scores the current one, and
a write-behind thread writes the previous batch's rows; both queues are bounded.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import kernels
from engine import filters
from engine._fsutil import atomic_write_json
from engine.errors import BadInputError
from engine.features import FeatureMatrixBuilder
from engine.governance import OutputColumns
from engine.outputs import score_batch, score_fields
from engine.part_writer import PartWriters
from engine.partitions import PartitionColumn
from engine.pipeline import ReadAhead, WriteBehind
from engine.plan import ScoreTask
from engine.quality.profiler import ProfileSpec, TaskProfiler
from engine.storage import Storage, open_parquet
from engine.task_input import Origin, read_batches

if TYPE_CHECKING:  # a job with variants imports them when its worker starts
    from engine.variants import VariantConfig, VariantScorer

log = logging.getLogger("lakescore.task")

RUN_ID_COLUMN = "run_id"
#: Batches decoded and built ahead of the kernel, and scored batches waiting to be written
#: (engine.pipeline): enough to keep the kernel busy, few enough to keep memory flat.
READ_AHEAD = 1
WRITE_BEHIND = 2
LOCATOR_COLUMNS = ("source_file", "row_number")


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs to build its kernel and run tasks; small and picklable."""

    model_path: str
    model_sha256: str
    backend: str
    feature_columns: tuple[str, ...]
    id_column: str | None
    run_id: str
    data_dir: str
    tasks_dir: str
    batch_rows: int
    trust_pickle: bool = False
    variants: VariantConfig | None = None
    #: columns to profile and the reference's bins; None: no profile (nothing measured)
    profile: ProfileSpec | None = None
    #: False: profile only (``lakescore profile``): no part file, no task record
    write: bool = True
    #: the kept columns and the id's hash salt (engine.governance)
    outputs: OutputColumns = field(default_factory=OutputColumns)
    #: output partition columns; the Parquet sink nests the run id under the partition
    partition_by: tuple[PartitionColumn, ...] = ()
    run_dir_in_partition: bool = False
    #: where object storage is, for ``s3://`` sources and sinks (no credentials)
    storage: Storage | None = None


STAGES = ("read", "features", "kernel", "write", "stats")


def _thread_cpu() -> float:
    """This thread's CPU seconds, and those the kernels' pool spent on its launches."""
    return time.thread_time() + kernels.launched_cpu_seconds()


class StageClock:
    """Wall and CPU seconds per stage, for one thread: :meth:`start`, then :meth:`lap`
    after each stage charges the time since the last mark to it (a kernel launch's CPU,
    spent in the kernels' pool, included).

    ``lap(stage, cpu=False)`` reads only the wall clock: the CPU spent until the next
    full lap is then split among the stages lapped in between by their wall time. The
    per-column laps of a batch's features and statistics take it: the thread's CPU clock
    is a system call (not the vDSO), and 1,600 of them per 1M-row run, made while holding
    the GIL, cost 1-3% of the run's wall time in alternating pairs.
    """

    def __init__(self) -> None:
        self.wall = dict.fromkeys(STAGES, 0.0)
        self.cpu = dict.fromkeys(STAGES, 0.0)
        self._mark = (0.0, 0.0)
        self._since_cpu: dict[str, float] = {}  # wall per stage since the last CPU reading

    def start(self) -> None:
        self._mark = (time.perf_counter(), _thread_cpu())
        self._since_cpu.clear()

    def lap(self, stage: str, *, cpu: bool = True) -> None:
        wall = time.perf_counter()
        spent = wall - self._mark[0]
        self.wall[stage] += spent
        self._since_cpu[stage] = self._since_cpu.get(stage, 0.0) + spent
        if not cpu:
            self._mark = (wall, self._mark[1])
            return
        now = _thread_cpu()
        used, walls = now - self._mark[1], self._since_cpu
        total = sum(walls.values())
        for lapped, share in walls.items():
            weight = share / total if total > 0 else float(lapped == stage)
            self.cpu[lapped] += used * weight
        walls.clear()
        self._mark = (wall, now)

    @staticmethod
    def total(*clocks: StageClock) -> tuple[dict[str, float], dict[str, float]]:
        """Wall and CPU seconds per stage over ``clocks`` (rounded to microseconds)."""
        return tuple(  # type: ignore[return-value]
            {s: round(sum(getattr(c, kind)[s] for c in clocks), 6) for s in STAGES}
            for kind in ("wall", "cpu")
        )


@dataclass
class TaskResult:
    task_id: str
    rows: int
    part: str
    #: wall seconds per stage (read, features, kernel, write, stats), summed over the
    #: task's threads
    seconds: dict[str, float] = field(default_factory=dict)
    #: CPU seconds per stage, of the thread that ran it (and, for the kernel, of the
    #: kernels' pool threads that ran its launches)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    #: the kernel backend that scored the task (a Ray GPU actor's is ``cuda``)
    backend: str = ""
    #: where it ran: the host's name and the worker process id
    node: str = ""
    worker: int = 0
    #: ``{"features": {name: ColumnProfile.to_dict()}, "scores": {...}}`` of the task's
    #: rows; a variant run adds ``"variants": {variant: {"score": ...}}``
    profile: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: every part's path under the data directory (``part`` is the first)
    parts: list[str] = field(default_factory=list)

    def part_paths(self) -> list[str]:
        return self.parts or ([self.part] if self.part else [])

    def to_json(self) -> dict[str, object]:
        # Shallow: the values are JSON-ready already, and ``asdict`` deep-copies the
        # profiles (about 130 kB of nested lists and dicts per task).
        return {f.name: getattr(self, f.name) for f in dataclass_fields(self)}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> TaskResult:
        # Keys of other versions (an older record's per-variant "variants") are skipped.
        known = {f.name for f in dataclass_fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})  # type: ignore[arg-type]


def load_kernel(
    model_path: str, expected_sha256: str, backend: str, *, trust_pickle: bool = False
) -> kernels.Kernel:
    """Load and compile the model, refusing a file that changed since the run was planned."""
    try:
        forest = kernels.load_model(model_path, trust_pickle=trust_pickle)
        if expected_sha256 and forest.sha256 != expected_sha256:
            raise BadInputError(
                f"{model_path}: sha256 {forest.sha256[:12]}... differs from the planned "
                f"{expected_sha256[:12]}... (the model file changed)"
            )
        return kernels.compile_model(forest, backend=backend)
    except kernels.KernelError as exc:
        raise BadInputError(str(exc)) from None


class ScoringWorker:
    """Holds one compiled kernel; call it with tasks. Safe to share between threads."""

    def __init__(
        self,
        config: WorkerConfig,
        kernel: kernels.Kernel | None = None,
        variant_kernels: list[kernels.Kernel] | None = None,
    ) -> None:
        self.config = config
        self.variants: VariantScorer | None = None
        if config.variants is not None:  # each row scored by its variant's kernel
            from engine.variants import VariantScorer

            self.variants = (
                VariantScorer(config.variants, variant_kernels)
                if variant_kernels
                else VariantScorer.load(config.variants, config.backend, config.trust_pickle)
            )
            kernel = self.variants.kernels[0]
        self.kernel = kernel or load_kernel(
            config.model_path,
            config.model_sha256,
            config.backend,
            trust_pickle=config.trust_pickle,
        )
        # The output's run_id column: indices into this one-string dictionary.
        run_id = np.frombuffer(config.run_id.encode(), dtype=np.uint8)
        offsets = np.array([0, len(run_id)], dtype=np.int32)
        self._run_id_dictionary = pa.Array.from_buffers(
            pa.string(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(run_id)]
        )

    def __call__(self, task: ScoreTask) -> TaskResult:
        cfg = self.config
        # Each stage thread keeps its own clock (summed at the end): no shared counters.
        main, read_clock, write_clock = StageClock(), StageClock(), StageClock()
        profiler = TaskProfiler(cfg.profile) if cfg.profile is not None else None
        feature_columns = list(cfg.feature_columns)
        # A matrix is scored while the next one is built and one waits (READ_AHEAD)
        builder = FeatureMatrixBuilder(feature_columns, buffers=READ_AHEAD + 2)
        writers = PartWriters(
            cfg.data_dir,
            task.task_id,
            partition_by=cfg.partition_by,
            source_partition=dict(task.partition),
            run_dir=cfg.run_id if cfg.run_dir_in_partition else None,
            open_writer=_part_writer,
            storage=cfg.storage,
        )
        ids = [cfg.id_column] if cfg.id_column else []
        partition_source = writers.data_columns() if cfg.write else []
        extra = [
            *cfg.outputs.keep,
            *partition_source,
            *sorted(filters.columns(task.filter) if task.filter else ()),
        ]
        columns = list(dict.fromkeys([*cfg.feature_columns, *ids, *extra]))

        def profile_column(j: int, values: np.ndarray, nulls: int) -> None:
            read_clock.lap("features", cpu=False)  # building column j
            profiler.add_feature_column(j, values, nulls)  # type: ignore[union-attr]
            read_clock.lap("stats", cpu=False)  # the batch's last lap splits its CPU

        def prepared() -> Iterator[tuple[pa.RecordBatch, np.ndarray, Origin]]:
            """Read-ahead thread: decode, build the matrix, profile the features."""
            batches = read_batches(task, columns, cfg.batch_rows, cfg.storage)
            try:
                while True:
                    read_clock.start()
                    item = next(batches, None)
                    read_clock.lap("read")
                    if item is None:
                        return
                    batch, origin = item
                    if profiler is None:
                        X = builder.build(batch)
                        read_clock.lap("features")
                    else:  # each column profiled as soon as it is built (in cache)
                        X = builder.build(batch, profile_column)
                        profiler.end_feature_batch(batch.num_rows)
                        read_clock.lap("features")
                    yield batch, X, origin
            finally:
                batches.close()

        def write(item: tuple[pa.Table, pa.RecordBatch]) -> None:
            """Write-behind thread: encode and write one batch's output rows."""
            write_clock.start()
            writers.write(*item)
            write_clock.lap("write")

        rows = 0
        which = None  # each row's variant index, in a variant run
        parts: list[str] = []
        reader = ReadAhead(prepared(), depth=READ_AHEAD, name="lakescore-read")
        writer = WriteBehind(write, depth=WRITE_BEHIND, name="lakescore-write")
        try:
            for batch, X, origin in reader:
                main.start()
                if self.variants is None:
                    scores = score_batch(self.kernel, X)
                else:
                    scores, which = self.variants.score(batch, X)
                main.lap("kernel")
                if cfg.write:  # the partition columns only: the batch's memory goes now
                    table = self._output_table(origin, batch, scores)
                    writer.put((table, batch.select(partition_source)))
                    main.lap("write")
                if profiler is not None:
                    # variant and model_version are Arrow columns: profiled per variant
                    profiler.add_scores(
                        {k: v for k, v in scores.items() if isinstance(v, np.ndarray)}
                    )
                    if self.variants is not None:  # each variant's acting score apart
                        names = self.variants.config.names
                        profiler.add_variants(names, which, scores["score"])
                    main.lap("stats")
                rows += batch.num_rows
            writer.finish()  # (waiting for the write-behind thread: not a stage of its own)
            main.start()
            if cfg.write:  # a profile-only run writes no part
                parts = writers.finish(lambda: self._output_schema(task))
            main.lap("write")
        finally:
            reader.close()
            writer.close()
            writers.abort()
            builder.close()  # after the reader: no matrix of this task is in use
        main.start()
        profile = _profile_docs(profiler)  # sketches serialised: part of the stats stage
        main.lap("stats")
        seconds, cpu_seconds = StageClock.total(main, read_clock, write_clock)
        result = TaskResult(
            task_id=task.task_id,
            rows=rows,
            part=parts[0] if parts else "",
            seconds=seconds,
            cpu_seconds=cpu_seconds,
            profile=profile,
            backend=self.kernel.backend,
            node=socket.gethostname(),
            worker=os.getpid(),
            parts=parts,
        )
        log.debug(
            "task %s scored %d rows",
            task.task_id,
            rows,
            extra={
                "event": "task_scored",
                "run_id": cfg.run_id,
                "task_id": task.task_id,
                "stage": "execute",
                "rows": rows,
                "seconds": round(sum(seconds.values()), 6),
                "node": result.node,
            },
        )
        if cfg.write:
            # compact: a record carries the task's profiles (about 130 kB for 50 features)
            record = Path(cfg.tasks_dir) / f"{task.task_id}.json"
            atomic_write_json(record, result.to_json(), readable=False)
        return result

    def _output_table(
        self, origin: Origin, batch: pa.RecordBatch, scores: dict[str, np.ndarray]
    ) -> pa.Table:
        n = batch.num_rows
        arrays: dict[str, pa.Array] = {}
        if self.config.id_column is not None:
            arrays[self.config.id_column] = self.config.outputs.ids(
                batch.column(self.config.id_column)
            )
        else:
            files: list[str] = []
            for relpath, _, count in origin:
                files += [relpath] * count
            numbers = [np.arange(at, at + count, dtype=np.int64) for _, at, count in origin]
            arrays[LOCATOR_COLUMNS[0]] = pa.array(files, pa.string())
            arrays[LOCATOR_COLUMNS[1]] = pa.array(np.concatenate(numbers))
        for name, values in scores.items():
            arrays[name] = _numpy_as_arrow(values)
        arrays.update(self.config.outputs.kept(batch))
        indices = _numpy_as_arrow(np.zeros(n, dtype=np.int32))
        arrays[RUN_ID_COLUMN] = pa.DictionaryArray.from_arrays(indices, self._run_id_dictionary)
        return pa.table(arrays)

    def _output_schema(self, task: ScoreTask) -> pa.Schema:
        ids = open_parquet(task.path, self.config.storage).schema_arrow
        fields: list[pa.Field] = []
        if self.config.id_column is not None:
            fields.append(self.config.outputs.id_field(ids.field(self.config.id_column)))
        else:
            fields += [
                pa.field(LOCATOR_COLUMNS[0], pa.string()),
                pa.field(LOCATOR_COLUMNS[1], pa.int64()),
            ]
        if self.variants is not None:
            fields += self.variants.fields()
        else:
            fields += score_fields(self.kernel.forest)
        fields += self.config.outputs.kept_fields(ids)
        fields.append(pa.field(RUN_ID_COLUMN, pa.dictionary(pa.int32(), pa.string())))
        return pa.schema(fields)


def _numpy_as_arrow(values: np.ndarray | pa.Array) -> pa.Array:
    """A numeric numpy column as Arrow, zero-copy. Not ``pa.array``: its first call in a
    process imports pandas (0.25-0.5 s, paid by every new worker process) to ask whether
    the values are a pandas object."""
    if isinstance(values, pa.Array):  # a variant run's variant and model_version
        return values
    if values.ndim == 1 and values.dtype.kind in "fiu" and values.flags.c_contiguous:
        return pa.Array.from_buffers(
            pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)]
        )
    return pa.array(values)  # class labels (strings), booleans


def _profile_docs(profiler: TaskProfiler | None) -> dict[str, dict[str, Any]]:
    if profiler is None:
        return {}
    result = profiler.result()
    docs: dict[str, dict[str, Any]] = {
        role: {name: p.to_dict() for name, p in result[role].items()}
        for role in ("features", "scores")
    }
    if "variants" in result:
        docs["variants"] = {
            variant: {name: p.to_dict() for name, p in columns.items()}
            for variant, columns in result["variants"].items()
        }
    return docs


def _part_writer(path: Any, schema: pa.Schema) -> pq.ParquetWriter:
    """Snappy (every Parquet reader has it), dictionary encoding for ``run_id`` only: trying
    it on unique ids and float scores made writing 3x slower (0.20 s -> 0.06 s per 1M rows
    measured) for no gain in size."""
    return pq.ParquetWriter(path, schema, compression="snappy", use_dictionary=[RUN_ID_COLUMN])


def read_task_record(path: Path) -> TaskResult:
    with open(path, encoding="utf-8") as fh:
        return TaskResult.from_json(json.load(fh))
