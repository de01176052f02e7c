"""The bench document as a terminal table, ``bench.json`` and ``bench.md`` (``bench.html``
is drawn by :mod:`engine.bench.html`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from engine.bench.plan import summary_lines

STAGE_ORDER = ("read", "features", "kernel", "write", "stats")


def write_outputs(doc: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write bench.json, bench.md and bench.html into ``out_dir``; their paths by kind."""
    from engine.bench.html import render_html

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "bench.json",
        "markdown": out_dir / "bench.md",
        "html": out_dir / "bench.html",
    }
    paths["json"].write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    paths["markdown"].write_text(render_markdown(doc))
    paths["html"].write_text(render_html(doc))
    return paths


def _gib(n: int | None) -> str:
    return f"{n / 2**30:.1f} GiB" if n else "? GiB"


def _num(x: float | None, fmt: str = ",.0f") -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def headline(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) lines describing what was measured, shared by every format."""
    m, mc, v, r = doc["model"], doc["machine"], doc["versions"], doc["rows"]
    if r["origin"] == "generated":
        origin = (
            f"generated from the model's thresholds ({r['leaves_targeted']:,} of "
            f"{r['leaves']:,} leaves targeted, {r['nan_rate']:.0%} NaN, seed {r['seed']})"
        )
    else:
        origin = f"sampled from {r['origin']} ({r['nan_rate']:.1%} missing)"
    native = doc["native"]
    return [
        (
            "model",
            f"{m['name']}: {m['format']} {m['objective']}, {m['trees']} trees, depth "
            f"{m['max_depth']}, {m['features']} features",
        ),
        (
            "machine",
            f"{mc['cpu_model']} ({mc['cores']} cores, {_gib(mc['memory_bytes'])})"
            + (f", GPU {mc['gpu']}" if mc["gpu"] else "")
            + f"; {mc['os']}",
        ),
        ("versions", ", ".join(f"{k} {val}" for k, val in v.items() if val)),
        ("rows", f"{r['n_rows']:,} {origin}"),
        (
            "native",
            f"{native['library']} {native['version']}: {native['call']}"
            if native["available"]
            else f"unavailable ({native['reason']})",
        ),
    ]


def backend_lines(doc: dict[str, Any]) -> list[str]:
    checks = {c["backend"]: c for c in doc["agreement"]}
    lib = doc["native"]["library"]
    out = []
    for b in doc["backends"]:
        if not b["available"]:
            out.append(f"{b['name']:<8} unavailable: {b['reason']}")
            continue
        text = f"{b['name']:<8} available ({b['layout'] or 'default'} layout)"
        c = checks.get(b["name"])
        if c is not None:
            verdict = "agrees with" if c["agree"] else "DISAGREES with"
            text += (
                f"; {verdict} {lib} (max diff {_num(c['max_abs_diff'], '.1e')} on "
                f"{c['rows']:,} rows)"
            )
        out.append(text)
    return out


def compile_lines(doc: dict[str, Any]) -> list[str]:
    out = []
    for c in doc["compile"]:
        cold = f"{c['cold_seconds']:.2f} s" if c["cold_seconds"] is not None else "-"
        cached = f"{c['cached_seconds']:.2f} s" if c["cached_seconds"] is not None else "-"
        text = f"{c['backend']:<8} cold {cold:>9}   cached {cached:>8}"
        if c["peak_rss_mib"] is not None:
            text += f"   peak RSS {c['peak_rss_mib']:,.0f} MiB"
        if c["reason"]:
            text += f"   ({c['reason']})"
        out.append(text)
    return out


def kernel_rows(doc: dict[str, Any]) -> list[list[str]]:
    """Kernel table rows: backend, threads, batch, rows/s, per core, native rows/s, ratio."""
    by_point = {(r["backend"], r["threads"], r["batch_rows"]): r for r in doc["ratios"]}
    native = {
        (m["threads"], m["batch_rows"]): m for m in doc["kernel"] if m["contender"] == "native"
    }
    rows = []
    for m in doc["kernel"]:
        if m["contender"] == "native":
            continue
        r = by_point.get((m["contender"], m["threads"], m["batch_rows"]))
        n = native.get((m["threads"], m["batch_rows"]))
        rows.append(
            [
                m["contender"],
                "GPU" if m["threads"] is None else str(m["threads"]),
                f"{m['batch_rows']:,}",
                _num(m["rows_per_s"]),
                _num(m["rows_per_s_per_core"]),
                _num(n["rows_per_s"]) if n else (_num(r["native_rows_per_s"]) if r else "-"),
                f"{r['ratio']:.2f}x" if r else "-",
            ]
        )
    if not rows:  # only the native library ran (no backend)
        for m in doc["kernel"]:
            rows.append(
                [
                    m["contender"],
                    str(m["threads"]),
                    f"{m['batch_rows']:,}",
                    "-",
                    "-",
                    _num(m["rows_per_s"]),
                    "-",
                ]
            )
    return rows


KERNEL_HEADER = ["backend", "threads", "batch", "rows/s", "per core", "native rows/s", "ratio"]


def e2e_lines(e: dict[str, Any] | None) -> list[str]:
    if not e:
        return []
    shares = e["stage_share"]
    order = sorted(shares, key=lambda k: -shares[k])
    where = e["executor"] if e["executor"] == e["cluster"] else f"{e['executor']} ({e['cluster']})"
    return [
        f"{where}, {e['nodes']} node(s), {e['cores']} core(s), "
        f"{e['workers']} worker(s), backend {e['backend']}: {e['rows']:,} rows in "
        f"{e['seconds']:.2f} s",
        f"{e['rows_per_s']:,.0f} rows/s = {e['rows_per_s_per_node']:,.0f} per node, "
        f"{e['rows_per_s_per_core']:,.0f} per core (read, features, kernel, write, stats, "
        "commit)",
        "stages: "
        + ", ".join(f"{k} {shares[k]:.0%}" for k in order)
        + (f" -> bound by {e['bound_by']}" if e["bound_by"] else ""),
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)

    return [line(header), *(line(r) for r in rows)]


def render_terminal(doc: dict[str, Any], paths: dict[str, Path] | None = None) -> str:
    lib = doc["native"]["library"] or "native"
    out = [f"lakescore bench ({doc['seconds']:.0f} s{', --quick' if doc['quick'] else ''})"]
    out += [f"{label:<9}{text}" for label, text in headline(doc)]
    out += ["", "backends", *("  " + x for x in backend_lines(doc))]
    out += ["", "compile (fresh process: load + compile + first row)"]
    out += ["  " + x for x in compile_lines(doc)]
    out += ["", f"kernel (every contender on the same rows; ratio = lakescore / {lib})"]
    out += ["  " + x for x in _table(KERNEL_HEADER, kernel_rows(doc))]
    out += ["", "end to end", *("  " + x for x in e2e_lines(doc["end_to_end"]))]
    if doc["end_to_end_cluster"]:
        out += ["", "end to end on the cluster"]
        out += ["  " + x for x in e2e_lines(doc["end_to_end_cluster"])]
    if doc["plan"]:
        out += ["", "plan", *("  " + x for x in summary_lines(doc["plan"]))]
        out += ["  arithmetic:", *("    " + x for x in doc["plan"]["arithmetic"])]
    if paths:
        out += ["", "wrote " + ", ".join(str(p) for p in paths.values())]
    return "\n".join(out) + "\n"


def render_markdown(doc: dict[str, Any]) -> str:
    lib = doc["native"]["library"] or "native"
    out = ["# lakescore bench", ""]
    out += [f"- **{label}**: {text}" for label, text in headline(doc)]
    out += ["", "## Backends", "", *(f"- {x}" for x in backend_lines(doc))]
    out += ["", "## Compile (fresh process: load + compile + first row)", ""]
    out += [f"- {x}" for x in compile_lines(doc)]
    out += ["", f"## Kernel (same rows for every contender; ratio = lakescore / {lib})", ""]
    out += ["| " + " | ".join(KERNEL_HEADER) + " |", "|" + "---|" * len(KERNEL_HEADER)]
    out += ["| " + " | ".join(r) + " |" for r in kernel_rows(doc)]
    out += ["", "## End to end", "", *(f"- {x}" for x in e2e_lines(doc["end_to_end"]))]
    if doc["end_to_end_cluster"]:
        out += ["", "## End to end on the cluster", ""]
        out += [f"- {x}" for x in e2e_lines(doc["end_to_end_cluster"])]
    if doc["plan"]:
        first, *rest = summary_lines(doc["plan"])
        out += ["", "## Plan", "", first, "", *(f"- {x.strip()}" for x in rest)]
        out += ["", "Arithmetic:", ""]
        out += [f"    {x}" for x in doc["plan"]["arithmetic"]]
    out += [
        "",
        f"Measured {doc['created_at']} in {doc['seconds']:.0f} s; every figure is in bench.json.",
        "",
    ]
    return "\n".join(out)
