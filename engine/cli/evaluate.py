"""``evaluate``: per-variant performance of a run from an outcomes table, and new weights."""

from __future__ import annotations

import argparse
import dataclasses
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="join outcomes to a run's scores: per-variant performance and weights"
    )
    p.add_argument("--outcomes", required=True, help="Parquet file/directory or CSV: id, outcome")
    p.add_argument("--sink", required=True)
    p.add_argument("--run", dest="run_id", help="run id (default: the latest committed run)")
    p.add_argument("--outcome-column", default="outcome")
    p.add_argument("--time-column", default="time")
    p.add_argument(
        "--since-run", action="store_true", help="count only outcomes at or after the run's start"
    )
    p.add_argument(
        "--missing",
        default="zero",
        choices=["zero", "drop"],
        help="a scored id without outcome rows: did not convert (zero) or is left out (drop)",
    )
    p.add_argument("--min-weight", type=float, default=0.05, help="floor of a proposed weight")
    p.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="move traffic only when one variant is best with this probability",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the Thompson draws")
    p.add_argument(
        "--propose-weights",
        action="store_true",
        help="print the next run's weights (Thompson sampling; implied by the two flags below)",
    )
    p.add_argument("--write-weights", metavar="JOB.toml", help="write proposed weights into it")
    p.add_argument(
        "--registry-weights",
        metavar="CAMPAIGN",
        help="store proposed weights in the registry for jobs whose [variants] name this campaign",
    )
    p.add_argument(
        "--registry", help="registry root for --registry-weights (default: the run's registry)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.evaluate import evaluate
    from engine.registry_weights import write_registry_weights
    from engine.reweight import write_weights

    if args.registry_weights:  # a bad name is found before anything is written
        from engine.registry_weights import check_campaign

        check_campaign(args.registry_weights, "--registry-weights")
    result = evaluate(
        args.sink,
        args.outcomes,
        run_id=args.run_id,
        outcome_column=args.outcome_column,
        time_column=args.time_column,
        since_run=args.since_run,
        missing=args.missing,
        min_weight=args.min_weight,
        confidence=args.confidence,
        seed=args.seed,
    )
    weights = {p.variant: p.proposed_weight for p in result.variants}
    if args.write_weights:
        write_weights(args.write_weights, weights)
    if args.registry_weights:
        write_registry_weights(
            _registry(args, result),
            args.registry_weights,
            weights,
            run_id=result.run_id,
            evaluation_id=result.evaluation_id,
        )
    if args.json:
        print(json.dumps(dataclasses.asdict(result), indent=2, default=str))
        return 0
    propose = bool(args.propose_weights or args.write_weights or args.registry_weights)
    print(f"run {result.run_id}  evaluation {result.evaluation_id}")
    print(
        f"{'variant':<14}{'rows':>9}{'conv':>8}{'rate':>8}  {'95% CI':<15}{'AUC':>6}"
        f"{'lift':>7}{'P(best)':>9}{'weight':>8}" + (f"{'next':>7}" if propose else "")
    )
    for p in result.variants:
        ci = f"{_f(p.ci_low, 3)}-{_f(p.ci_high, 3)}"
        print(
            f"{p.variant:<14}{p.rows:>9,}{p.conversions:>8,}{_f(p.rate, 4):>8}  {ci:<15}"
            f"{_f(p.auc, 3):>6}{_f(p.lift, 2):>7}{_f(p.prob_best, 3):>9}{_f(p.weight, 3):>8}"
            + (f"{_f(p.proposed_weight, 3):>7}" if propose else "")
        )
    if propose:
        verdict = "moved" if result.weights_moved else "kept (no variant is decisively best)"
        print(f"proposed weights {verdict}; table {result.table}")
    else:
        print(f"table {result.table} (--propose-weights: the next run's weights)")
    if args.write_weights:
        print(f"weights written to {args.write_weights}")
    if args.registry_weights:
        print(f"weights stored in the registry for campaign {args.registry_weights}")
    return 0


def _registry(args: argparse.Namespace, result) -> str:
    """``--registry``, else the registry the run's variants came from, else the environment."""
    from engine.errors import BadInputError
    from engine.registry import REGISTRY_ENV, registry_location

    used = next((p.model["registry"] for p in result.variants if p.model.get("registry")), None)
    root = args.registry or used or registry_location(None)
    if root is None:
        raise BadInputError(
            f"--registry-weights: no registry (pass --registry PATH or set ${REGISTRY_ENV})"
        )
    return root


def _f(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
