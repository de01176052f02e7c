"""``lakescore bench`` end to end: the files it writes, bench.json's schema, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scoring_helpers import error_line, sha256_file

NUM = (int, float)
OPT_NUM = (int, float, type(None))
OPT_STR = (str, type(None))
E2E = {
    "executor": str,
    "cluster": str,
    "backend": str,
    "workers": int,
    "rows": int,
    "tasks": int,
    "seconds": NUM,
    "rows_per_s": NUM,
    "nodes": int,
    "cores": int,
    "rows_per_s_per_node": NUM,
    "rows_per_s_per_core": NUM,
    "stage_seconds": dict,
    "stage_share": dict,
    "bound_by": OPT_STR,
    "status": str,
    "peak_rss_mib": NUM,
}
#: bench.json, key by key: a type, a tuple of types, a nested schema, or [item schema].
SCHEMA: dict[str, Any] = {
    "schema": str, "created_at": str, "seconds": NUM, "command": list, "quick": bool,
    "machine": {"hostname": str, "cpu_model": str, "cores": int, "logical_cpus": int,
                "memory_bytes": (int, type(None)), "os": str, "gpu": OPT_STR,
                "load_average": (list, type(None))},
    "versions": {k: OPT_STR for k in ("python", "lakescore", "numpy", "numba", "numba_cuda",
                                       "pyarrow", "ray", "xgboost", "lightgbm", "sklearn",
                                       "treelite", "tl2cgen")},
    "model": {"path": str, "name": str, "format": str, "objective": str, "trees": int,
              "max_depth": int, "leaves": int, "features": int, "outputs": int, "sha256": str},
    "rows": {"origin": str, "n_rows": int, "n_features": int, "nan_rate": NUM, "seed": int,
             "leaves": int, "leaves_targeted": int, "matrix_bytes": int},
    "settings": {"threads": list, "batch_rows": list, "default_batch_rows": int,
                 "seconds_per_measurement": NUM, "e2e_rows": int, "workers": int},
    "backends": [{"name": str, "available": bool, "reason": OPT_STR, "layout": OPT_STR,
                  "kernel_bytes": (int, type(None))}],
    "native": {"available": bool, "library": OPT_STR, "call": OPT_STR, "version": OPT_STR,
               "reason": OPT_STR},
    "agreement": [{"backend": str, "rows": int, "max_abs_diff": OPT_NUM, "tolerance": OPT_NUM,
                   "agree": bool, "detail": OPT_STR}],
    "compile": [{"backend": str, "cold_seconds": OPT_NUM, "cached_seconds": OPT_NUM,
                 "load_seconds_cached": OPT_NUM, "peak_rss_mib": OPT_NUM, "reason": OPT_STR}],
    "kernel": [{"contender": str, "library": str, "threads": (int, type(None)),
                "batch_rows": int, "rows": int, "batches": int, "seconds": NUM,
                "peak_rss_mib": NUM, "rows_per_s": NUM, "rows_per_s_per_core": OPT_NUM}],
    "ratios": [{"backend": str, "threads": (int, type(None)), "batch_rows": int,
                "lakescore_rows_per_s": NUM, "native_rows_per_s": NUM, "ratio": NUM}],
    "end_to_end": E2E,
    "end_to_end_cluster": (dict, type(None)),
    "plan": {"rows": int, "deadline_seconds": NUM, "headroom": NUM, "budget_seconds": NUM,
             "rate_source": str, "rows_per_s": NUM, "rows_per_s_per_core": NUM,
             "core_seconds": NUM, "cores_needed": int, "cores_per_node": int,
             "nodes_needed": int, "current_cores": int, "current_nodes": int,
             "expected_seconds": NUM, "meets_deadline": bool, "bound_by": OPT_STR,
             "stage_share": dict, "gpu": (dict, type(None)), "arithmetic": list},
    "peak_rss_mib": NUM,
}  # fmt: skip


def check_schema(doc: Any, schema: Any, where: str = "bench.json") -> None:
    if isinstance(schema, dict):
        assert isinstance(doc, dict), where
        assert set(doc) == set(schema), f"{where}: keys {sorted(set(doc) ^ set(schema))}"
        for key, sub in schema.items():
            check_schema(doc[key], sub, f"{where}.{key}")
    elif isinstance(schema, list):
        assert isinstance(doc, list) and doc, f"{where}: expected a non-empty list"
        for i, item in enumerate(doc):
            check_schema(item, schema[0], f"{where}[{i}]")
    else:
        types = schema if isinstance(schema, tuple) else (schema,)
        ok = isinstance(doc, types) and not (isinstance(doc, bool) and bool not in types)
        assert ok, f"{where}: {doc!r} is not {types}"


@pytest.fixture(scope="module")
def bench_run(model_file: Path, tmp_path_factory: pytest.TempPathFactory, kernel_warm):
    from scoring_helpers import run_cli

    out = tmp_path_factory.mktemp("bench") / "out"
    proc = run_cli("bench", "--model", model_file, "--quick", "--rows", "500M",
                   "--deadline", "2h", "--out", out, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc, out


def test_bench_json_has_every_key_typed(bench_run):
    _, out = bench_run
    doc = json.loads((out / "bench.json").read_text())
    check_schema(doc, SCHEMA)
    assert doc["schema"] == "lakescore-bench/1" and doc["quick"] is True
    assert doc["native"]["library"] == "xgboost" and doc["native"]["available"]
    assert {b["name"] for b in doc["backends"]} >= {"numba", "cuda"}
    numba = next(b for b in doc["backends"] if b["name"] == "numba")
    assert numba["available"] and numba["reason"] is None
    # a backend that is not usable here says why instead of failing the run
    assert all(b["reason"] for b in doc["backends"] if not b["available"])
    assert all(a["agree"] for a in doc["agreement"])
    assert {m["contender"] for m in doc["kernel"]} >= {"numba", "native"}
    assert doc["ratios"] and all(r["ratio"] > 0 for r in doc["ratios"])
    e2e = doc["end_to_end"]
    assert e2e["rows"] == doc["settings"]["e2e_rows"] and e2e["status"] == "ok"
    assert set(e2e["stage_seconds"]) >= {"read", "features", "kernel", "write", "stats"}
    plan = doc["plan"]
    assert plan["rows"] == 500_000_000 and plan["deadline_seconds"] == 7200
    assert plan["headroom"] == 0.3 and plan["budget_seconds"] == pytest.approx(5040)
    assert plan["rows_per_s"] == pytest.approx(e2e["rows_per_s"])
    per_core = e2e["rows_per_s"] / e2e["cores"]
    assert plan["cores_needed"] == max(1, -(-500_000_000 // int(per_core * 5040)))
    assert plan["bound_by"] in e2e["stage_seconds"]


def test_bench_writes_a_table_markdown_and_a_self_contained_html(bench_run):
    proc, out = bench_run
    for heading in ("backends", "compile", "kernel", "end to end", "plan"):
        assert f"\n{heading}" in proc.stdout
    assert "500M rows within 2h00m00s with 30% headroom" in proc.stdout
    assert "cores needed = ceil(" in proc.stdout
    md = (out / "bench.md").read_text()
    assert md.startswith("# lakescore bench") and "| backend | threads |" in md
    page = (out / "bench.html").read_text()
    assert page.count("<svg") == 2 and "<polyline" in page
    assert "<script" not in page and "src=" not in page and "<link" not in page


@pytest.mark.parametrize(
    ("args", "fault"),
    [
        (["--model", "{tmp}/nope.json"], "not found"),
        (["--model", "churn@prod"], "no registry is set"),
        (["--model", "{model}", "--rows", "5X", "--deadline", "2h"], "--rows"),
        (["--model", "{model}", "--rows", "500M", "--deadline", "soon"], "--deadline"),
        (["--model", "{model}", "--rows", "500M"], "--rows and --deadline"),
        (["--model", "{model}", "--rows", "1M", "--deadline", "1h", "--headroom", "2"],
         "--headroom"),
        (["--model", "{model}", "--threads", "0"], "--threads"),
        (["--model", "{model}", "--out", "{model}"], "--out"),
        (["--model", "{model}", "--cluster", "nowhere"], "--cluster"),
        (["--model", "{model}", "--source", "{tmp}/no-lake"], "--source"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_naming_the_fault(cli, model_file: Path, tmp_path: Path, args, fault):
    args = [a.format(tmp=tmp_path, model=model_file) for a in args]
    proc = cli("bench", *args, "--quick", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert fault in error_line(proc)
    assert not list(tmp_path.iterdir()), "nothing is written on bad input"


def test_bench_takes_a_registry_model_by_alias(cli, model_file: Path, tmp_path: Path):
    registry, out = tmp_path / "registry", tmp_path / "out"
    for args in (
        ["models", "register", model_file, "--name", "churn", "--registry", registry],
        ["models", "alias", "churn@1", "champion", "--registry", registry],
        ["bench", "--model", "churn@champion", "--registry", registry, "--quick", "--out", out],
    ):
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "bench.json").read_text())
    assert doc["model"]["sha256"] == sha256_file(model_file)


@pytest.mark.slow
def test_bench_on_a_local_ray_cluster(cli, model_file: Path, tmp_path: Path):
    out = tmp_path / "out"
    args = ["--quick", "--cluster", "ray", "--rows", "1B", "--deadline", "8h", "--out", out]
    proc = cli("bench", "--model", model_file, *args, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "bench.json").read_text())
    cluster = doc["end_to_end_cluster"]
    check_schema(cluster, E2E, "end_to_end_cluster")
    assert cluster["executor"] == "ray" and cluster["nodes"] == 1 and cluster["cores"] >= 1
    assert cluster["rows"] == doc["settings"]["e2e_rows"]
    assert doc["plan"]["rate_source"] == "end_to_end_cluster"
    assert "end to end on the cluster" in proc.stdout
