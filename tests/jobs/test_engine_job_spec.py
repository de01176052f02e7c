"""``lakescore run JOB.toml``: the job spec's keys, types and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from scoring_helpers import ID, error_line

from engine import BadInputError, JobSpec, load_job_file

BASE = 'model = "m.json"\nsource = "lake"\nsink = "scores"\n'


def write_job(tmp_path: Path, text: str) -> Path:
    job = tmp_path / "job.toml"
    job.write_text(text)
    return job


def test_load_job_file_resolves_paths_against_the_file(tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        'model = "models/m.json"\nsource = "../lake"\nsink = "/abs/scores"\n'
        f'id_column = "{ID}"\nbatch_rows = 10\ntask_rows = 20\nworkers = 3\n'
        '[columns]\nage = "age_years"\n',
    )
    spec = load_job_file(job)
    assert spec == JobSpec(
        model=str(tmp_path / "models" / "m.json"),
        source=str(tmp_path.parent / "lake"),
        sink="/abs/scores",
        id_column=ID,
        columns={"age": "age_years"},
        batch_rows=10,
        task_rows=20,
        workers=3,
    )


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("treads = 4\n", "'treads'"),
        ("[colums]\nage = 'x'\n", "'colums'"),
        ('batch_rows = "big"\n', "'batch_rows'"),
        ("batch_rows = 1.5\n", "'batch_rows'"),
        ("workers = true\n", "'workers'"),
        ("workers = 0\n", "workers"),
        ("id_column = 7\n", "'id_column'"),
        ('columns = "age=x"\n', "'columns'"),
        ("[columns]\nage = 3\n", "columns"),
        ('format = "csv"\n', "format"),
        ("trust_pickle = 1\n", "'trust_pickle'"),
    ],
)
def test_bad_keys_and_types_name_the_key(tmp_path: Path, extra: str, named: str) -> None:
    job = write_job(tmp_path, BASE + extra)
    with pytest.raises(BadInputError) as info:
        load_job_file(job)
    message = str(info.value)
    assert named in message
    assert str(job) in message
    assert "\n" not in message


@pytest.mark.parametrize("missing", ["model", "source", "sink"])
def test_missing_required_key(tmp_path: Path, missing: str) -> None:
    lines = [line for line in BASE.splitlines() if not line.startswith(missing)]
    job = write_job(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(BadInputError, match=f"missing required key '{missing}'"):
        load_job_file(job)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    job = write_job(tmp_path, BASE + "batch_rows = = 3\n")
    with pytest.raises(BadInputError, match="invalid TOML") as info:
        load_job_file(job)
    assert str(job) in str(info.value)


@pytest.mark.parametrize(
    ("extra", "named"),
    [("treads = 4\n", "unknown key 'treads'"), ('task_rows = "10"\n', "key 'task_rows'")],
)
def test_cli_run_bad_job_exits_2(cli, tmp_path: Path, extra: str, named: str) -> None:
    job = write_job(tmp_path, BASE + extra)
    proc = cli("run", job)
    assert proc.returncode == 2
    line = error_line(proc)
    assert named in line
    assert str(job) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.toml"]


def test_cli_run_missing_job_file(cli, tmp_path: Path) -> None:
    proc = cli("run", tmp_path / "nope.toml")
    assert proc.returncode == 2
    assert str(tmp_path / "nope.toml") in error_line(proc)
