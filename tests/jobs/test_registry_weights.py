"""Proposed weights kept in the registry: ``evaluate --registry-weights CAMPAIGN`` stores
them, and the next run of a job whose ``[variants]`` names the campaign uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_evaluate import write_outcomes
from variant_helpers import make_registry, train_challenger, variants_job

from engine.coordinator import run_job
from engine.errors import BadInputError
from engine.evaluate import evaluate
from engine.registry import Registry
from engine.registry_weights import read_registry_weights, write_registry_weights
from engine.spec import load_job_file


@pytest.fixture
def campaign_job(model_file: Path, lake: Path, tmp_path: Path) -> Path:
    train_challenger(tmp_path / "challenger.json")
    make_registry(tmp_path / "reg", model_file, tmp_path / "challenger.json")
    job = variants_job(tmp_path, lake, tmp_path / "reg", weights=(0.5, 0.5))
    job.write_text(job.read_text().replace("[variants]\n", '[variants]\ncampaign = "nov"\n'))
    return job


def test_the_next_run_takes_the_campaigns_weights_from_the_registry(
    campaign_job: Path, tmp_path: Path
) -> None:
    first = run_job(load_job_file(campaign_job), progress=False)
    plan = first.record["variant_plan"]
    assert (plan["campaign"], plan["weights_source"]) == ("nov", "job")  # no evaluation yet
    outcomes = write_outcomes(
        tmp_path / "scores", tmp_path / "o.parquet", {"champion": 0.1, "challenger": 0.3}, 3
    )
    result = evaluate(tmp_path / "scores", outcomes)
    proposed = {p.variant: p.proposed_weight for p in result.variants}
    root = str(tmp_path / "reg")
    write_registry_weights(root, "nov", proposed, run_id=result.run_id)
    write_registry_weights(root, "nov", proposed, run_id=result.run_id)  # history kept
    doc = read_registry_weights(root, "nov")
    assert doc is not None and len(doc["history"]) == 1
    assert "_campaigns" not in Registry(root).names()  # not a model

    second = run_job(load_job_file(campaign_job), progress=False)
    plan = second.record["variant_plan"]
    assert plan["weights_source"] == "registry:nov"
    for name, weight in proposed.items():
        assert plan["models"][name]["weight"] == pytest.approx(weight / sum(proposed.values()))
    assert second.record["variants"]["challenger"]["share"] > 0.85
    assert second.run_id != first.run_id  # other weights: another job, never a resume


def test_campaign_weights_for_other_variants_are_bad_input(
    campaign_job: Path, tmp_path: Path
) -> None:
    write_registry_weights(str(tmp_path / "reg"), "nov", {"champion": 0.5, "other": 0.5})
    with pytest.raises(BadInputError, match="campaign nov has weights for champion, other"):
        run_job(load_job_file(campaign_job), progress=False)
    assert not (tmp_path / "scores").exists()
    bad = campaign_job.read_text().replace('campaign = "nov"', 'campaign = "a b"')
    campaign_job.write_text(bad)
    with pytest.raises(BadInputError, match="campaign 'a b'"):
        load_job_file(campaign_job)


@pytest.mark.slow
def test_cli_evaluate_stores_weights_in_the_registry(
    cli, campaign_job: Path, tmp_path: Path
) -> None:
    run_job(load_job_file(campaign_job), progress=False)
    outcomes = write_outcomes(
        tmp_path / "scores", tmp_path / "o.parquet", {"champion": 0.3, "challenger": 0.1}, 4
    )
    done = cli(
        "evaluate", "--outcomes", outcomes, "--sink", tmp_path / "scores",
        "--registry-weights", "nov", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    proposed = {v["variant"]: v["proposed_weight"] for v in json.loads(done.stdout)["variants"]}
    doc = read_registry_weights(str(tmp_path / "reg"), "nov")  # the run's registry
    assert doc is not None and doc["weights"] == proposed and proposed["champion"] > 0.9
    bad = cli("evaluate", "--outcomes", outcomes, "--sink", tmp_path / "scores",
              "--registry-weights", "../x")  # fmt: skip
    assert bad.returncode == 2 and "campaign '../x'" in bad.stderr
