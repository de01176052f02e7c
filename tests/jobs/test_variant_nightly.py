"""Issue 8's "done when", end to end through the command line: a two-variant nightly job
from a TOML job spec naming registry aliases runs twice and writes per-variant results;
``evaluate`` on synthetic outcomes (the challenger converts better) proposes weights and
writes them into the job spec; the next run uses them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scoring_helpers import ID, quality_table, read_sink
from test_evaluate import write_outcomes
from variant_helpers import train_challenger

from engine.registry import Registry
from engine.spec import load_job_file

JOB = """\
# nightly churn campaign: champion vs challenger
source = "{lake}"
sink = "scores"
id_column = "customer_id"
registry = "registry"

[variants]
salt = "nov-campaign"

[variants.models]
champion = {{ model = "churn@champion", weight = 0.5 }}    # churn@1
challenger = {{ model = "churn@challenger", weight = 0.5 }}  # churn@2
"""


def run(cli, job: Path) -> dict:
    done = cli("run", job, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def variant_by_id(sink: Path, run_id: str) -> dict[int, str]:
    table = read_sink(sink)
    table = table.filter(pc.equal(pc.cast(table.column("run_id"), pa.string()), run_id))
    names = pc.cast(table.column("variant"), pa.string()).to_pylist()
    return dict(zip(table.column(ID).to_pylist(), names, strict=True))


@pytest.mark.slow
def test_nightly_champion_challenger_job_learns_from_outcomes(
    cli, model_file: Path, lake: Path, tmp_path: Path
) -> None:
    train_challenger(tmp_path / "challenger.json")
    registry = Registry(str(tmp_path / "registry"))
    registry.register(model_file, "churn")
    registry.register(tmp_path / "challenger.json", "churn")
    registry.set_alias("churn", 1, "champion")
    registry.set_alias("churn", 2, "challenger")
    job = tmp_path / "nightly.toml"
    job.write_text(JOB.format(lake=lake))
    sink = tmp_path / "scores"

    # Two nightly runs: the same customers get the same variants; per-variant results.
    first, second = run(cli, job), run(cli, job)
    assert variant_by_id(sink, first["run_id"]) == variant_by_id(sink, second["run_id"])
    for record in (first, second):
        variants = record["variants"]
        assert variants["champion"]["version"] == 1 and variants["champion"]["alias"] == "champion"
        assert variants["challenger"]["version"] == 2
        assert variants["champion"]["rows"] + variants["challenger"]["rows"] == 3000
    assert second["variants"]["challenger"]["reference"] == f"run:{first['run_id']}"
    assert second["variants"]["challenger"]["drift_status"] == "ok"
    stats = quality_table(sink, "score_stats").to_pylist()
    per_variant = {(r["run_id"], r["variant"]) for r in stats if r["variant"] is not None}
    assert per_variant == {(r["run_id"], v) for r in (first, second) for v in first["variants"]}
    drift = quality_table(sink, "drift").to_pylist()
    assert {r["variant"] for r in drift if r["variant"]} == {"champion", "challenger"}

    # Outcomes where the challenger converts better: evaluate moves traffic to it and
    # writes the weights into the job file.
    outcomes = write_outcomes(
        sink, tmp_path / "outcomes.parquet", {"champion": 0.1, "challenger": 0.3}, 11
    )
    done = cli("evaluate", "--outcomes", outcomes, "--sink", sink, "--write-weights", job, "--json")
    assert done.returncode == 0, done.stderr
    evaluation = json.loads(done.stdout)
    assert evaluation["run_id"] == second["run_id"] and evaluation["weights_moved"]
    proposed = {v["variant"]: v["proposed_weight"] for v in evaluation["variants"]}
    assert proposed["challenger"] > 0.9
    spec = load_job_file(job)
    assert spec.variants is not None
    written = {v.name: v.weight for v in spec.variants.variants}
    assert written == {k: pytest.approx(w, abs=1e-4) for k, w in proposed.items()}
    assert job.read_text().startswith("# nightly churn campaign")  # only the numbers changed

    # The next run uses them: its plan has the new weights and its shares follow them.
    third = run(cli, job)
    plan = third["variant_plan"]["models"]
    total = sum(written.values())
    for name in ("champion", "challenger"):
        weight = written[name] / total
        assert plan[name]["weight"] == pytest.approx(weight, abs=1e-9)
        sigma = (weight * (1 - weight) / 3000) ** 0.5
        assert abs(third["variants"][name]["share"] - weight) < 5 * sigma
    # The whole run's score moved with the weights: recorded, not judged; each variant's
    # own score is judged against its previous run instead.
    (mixed,) = [d for d in third["drift"] if d["column"] == "score"]
    assert mixed["status"] == "ok" and mixed["reasons"][0].startswith("not judged")
    assert third["variants"]["challenger"]["reference"] == f"run:{second['run_id']}"
    assert third["variants"]["challenger"]["drift_status"] == "ok"
    assert third["status"] in ("ok", "warn")
    # The assignment hash is unchanged, so champion's customers now are a subset of its
    # customers before (its slice of [0, 1) shrank from [0, 0.5) to [0, w)).
    before, after = variant_by_id(sink, second["run_id"]), variant_by_id(sink, third["run_id"])
    now_champion = {i for i, v in after.items() if v == "champion"}
    assert now_champion and all(before[i] == "champion" for i in now_champion)
    assert np.mean([v == "challenger" for v in after.values()]) > 0.85
