"""Small files on object storage: planning reads each footer in one request, several at
once; a task fetches its small objects several at once; scores stay exact and a bad
object is named. Requests are counted by a proxy in front of moto's S3 server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from latency_proxy import LatencyProxy
from s3_helpers import s3fs, upload
from scoring_helpers import (
    ID,
    assert_scored_exactly,
    corrupt_first_page,
    read_sink,
    read_source,
    snapshot,
    write_lake,
)

from engine import score
from engine.errors import BadInputError
from engine.filters import parse
from engine.plan import plan_tasks
from engine.source import list_source

FILES = 40  # per region
ROWS = 7


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("remote-small") / "lake"
    return write_lake(root, regions=("east", "west"), files_per_region=FILES, rows_per_file=ROWS)


@pytest.fixture
def proxied(s3_env: str, monkeypatch) -> LatencyProxy:
    """A proxy (holding each request back 30 ms) between lakescore and moto."""
    with LatencyProxy(int(s3_env.rsplit(":", 1)[1]), 0.03) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        yield proxy


def test_small_objects_are_scored_once_without_a_size_request_each(
    model_file: Path, small_lake: Path, bucket: str, s3_env: str, proxied: LatencyProxy,
    tmp_path: Path,
) -> None:  # fmt: skip
    upload(s3_env, small_lake, f"{bucket}/lake")
    proxied.reset()
    sink = tmp_path / "scores"
    result = score(model_file, f"s3://{bucket}/lake", sink, id_column=ID, batch_rows=64)
    requests, _ = proxied.reset()
    objects = 2 * FILES
    # The listing says each object's size: none is asked for again (it was, twice per
    # object: planning and reading). A footer is one request when planning; a task reads
    # an object's footer and its data.
    assert requests["HEAD"] <= 3
    assert requests["GET"] <= 3 * objects + 5
    source = read_source(small_lake)
    table = read_sink(sink)
    assert table.num_rows == source.num_rows == result.rows_scored == objects * ROWS
    assert_scored_exactly(table, model_file, source)


def test_footers_and_small_objects_are_read_several_at_a_time(
    model_file: Path, small_lake: Path, bucket: str, s3_env: str, proxied: LatencyProxy,
    tmp_path: Path,
) -> None:  # fmt: skip
    upload(s3_env, small_lake, f"{bucket}/lake")
    proxied.reset()
    files = list_source(f"s3://{bucket}/lake").files
    _, planning_peak = proxied.reset()
    assert [f.relpath for f in files] == sorted(p.relative_to(small_lake).as_posix()
                                                for p in small_lake.rglob("*.parquet"))  # fmt: skip
    assert planning_peak >= 4  # one request at a time held back at most 1
    score(model_file, f"s3://{bucket}/lake", tmp_path / "scores", id_column=ID, workers=1)
    _, scoring_peak = proxied.reset()
    assert scoring_peak >= 4  # one worker: only its fetches ahead overlap


def test_a_corrupt_small_object_is_named_and_the_sink_untouched(
    model_file: Path, small_lake: Path, bucket: str, s3_env: str, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(small_lake, lake)
    bad = sorted((lake / "region=west").glob("*.parquet"))[17]
    corrupt_first_page(bad)  # the footer reads: found by the task that fetches it
    upload(s3_env, lake, f"{bucket}/lake")
    sink = tmp_path / "scores"
    before = snapshot(sink)
    with pytest.raises(BadInputError, match=f"s3://{bucket}/lake/region=west/{bad.name}"):
        score(model_file, f"s3://{bucket}/lake", sink, id_column=ID)
    assert snapshot(sink) == before


def test_the_first_unreadable_footer_in_listing_order_is_named(
    small_lake: Path, bucket: str, s3_env: str
) -> None:
    """Footers are read at once, but the error is always the first bad object's."""
    upload(s3_env, small_lake, f"{bucket}/lake")
    s3 = s3fs(s3_env)
    names = sorted(p.name for p in (small_lake / "region=west").glob("*.parquet"))
    for name in (names[30], names[5]):
        with s3.open_output_stream(f"{bucket}/lake/region=west/{name}") as out:
            out.write(b"not a parquet file")
    with pytest.raises(BadInputError, match=f"region=west/{names[5]}: not a readable Parquet"):
        list_source(f"s3://{bucket}/lake")


def test_a_filter_on_an_s3_lake_prunes_row_groups_several_footers_at_a_time(
    model_file: Path, bucket: str, s3_env: str, proxied: LatencyProxy, tmp_path: Path
) -> None:
    """A filter on a column (not a partition) is checked against each object's row-group
    statistics when planning, footers read at once; the rows kept are exactly those that
    pass it, scored exactly."""
    lake = write_lake(tmp_path / "lake", regions=("east", "west"), files_per_region=12,
                      rows_per_file=60, row_group_rows=20)  # fmt: skip
    upload(s3_env, lake, f"{bucket}/lake")
    source = f"s3://{bucket}/lake"
    expr = parse(f"{ID} < 700 and {ID} >= 100")
    files = list_source(source).files
    proxied.reset()
    tasks = plan_tasks(files, task_rows=1000, filter=expr)
    _, pruning_peak = proxied.reset()
    assert pruning_peak >= 4  # the statistics' footers, read again at once
    # ids run 0..1439 in file order, 20 to a row group: groups wholly outside are pruned
    planned = sum(task.num_rows for task in tasks)
    assert planned == 600
    result = score(model_file, source, tmp_path / "scores", id_column=ID,
                   filter=f"{ID} < 700 and {ID} >= 100")  # fmt: skip
    table = read_sink(tmp_path / "scores")
    assert result.rows_scored == table.num_rows == 600
    everything = read_source(lake)
    ids = everything.column(ID).to_numpy()
    assert_scored_exactly(table, model_file, everything.filter((ids >= 100) & (ids < 700)))


def test_a_filter_known_when_listing_costs_one_request_per_footer(
    bucket: str, s3_env: str, proxied: LatencyProxy, tmp_path: Path
) -> None:
    """The footer read when listing with a filter also gives the row groups the filter
    keeps: planning then reads no footer again (it read each twice). Planned under
    another filter, the footers are read again, and the plan is still right."""
    lake = write_lake(tmp_path / "lake", regions=("east", "west"), files_per_region=12,
                      rows_per_file=60, row_group_rows=20)  # fmt: skip
    upload(s3_env, lake, f"{bucket}/lake")
    source = f"s3://{bucket}/lake"
    expr = parse(f"{ID} < 700 and {ID} >= 100")
    proxied.reset()
    files = list_source(source, filter=expr).files
    listing, _ = proxied.reset()
    tasks = plan_tasks(files, task_rows=1000, filter=expr)
    planning, _ = proxied.reset()
    assert len(files) == 24
    assert listing["GET"] <= 24 + 3  # a footer each, and the listing's own requests
    assert sum(planning.values()) == 0  # on the old code: a footer each again
    assert sum(task.num_rows for task in tasks) == 600
    unfiltered_listing = list_source(source).files
    again = plan_tasks(unfiltered_listing, task_rows=1000, filter=expr)
    assert [t.task_id for t in tasks] == [t.task_id for t in again]
    assert [t.fragments for t in tasks] == [t.fragments for t in again]
    proxied.reset()
    other = plan_tasks(files, task_rows=1000, filter=parse(f"{ID} < 300"))
    replanning, _ = proxied.reset()
    assert sum(task.num_rows for task in other) == 300
    assert replanning["GET"] >= 5  # its row groups are read again: not taken from the other
