"""``lakescore demo``: a synthetic customer lake, a churn model trained on it, one run.

The lake looks like what a retailer's nightly churn job reads: one row per customer with
spend and visit counts over several windows, recency, tenure, engagement rates and flags,
a few per cent of values missing, hive-partitioned by region. Everything is generated
from fixed seeds, so the same ``--rows`` always gives the same lake and model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger("lakescore.demo")

REGIONS = ("north", "south", "east", "west", "central", "coastal", "mountain", "islands")
WINDOWS = (7, 30, 90, 180, 365)
CATEGORIES = ("grocery", "fashion", "electronics", "home", "beauty")
FLAGS = ("is_member", "has_app", "newsletter", "has_credit_card", "autopay", "paperless")
ROW_GROUP_ROWS = 65_536
LAKE_SEED = 20261126
TRAIN_SEED = 7
TRAIN_ROWS = 50_000


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def lake(self) -> Path:
        return self.root / "customers"

    @property
    def model(self) -> Path:
        return self.root / "models" / "churn.json"

    @property
    def sink(self) -> Path:
        return self.root / "scores"


def customers(n: int, rng: np.random.Generator, first_id: int = 0) -> dict[str, np.ndarray]:
    """``n`` synthetic customers as named numpy columns (nulls as NaN in float columns)."""
    activity = rng.gamma(2.0, 1.0, n)  # a latent engagement level per customer
    cols: dict[str, np.ndarray] = {"customer_id": np.arange(first_id, first_id + n, dtype=np.int64)}
    cols["tenure_months"] = rng.integers(0, 240, n).astype(np.int16)
    cols["age"] = rng.normal(42, 13, n).clip(18, 95).astype(np.float32)
    cols["recency_days"] = rng.exponential(30 / activity).clip(0, 730).astype(np.int32)
    for w in WINDOWS:
        visits = rng.poisson(activity * w / 10)
        cols[f"visits_{w}d"] = visits.astype(np.int32)
        cols[f"spend_{w}d"] = (visits * rng.gamma(3.0, 15.0, n)).astype(np.float32)
    for w in (30, 90, 365):
        cols[f"orders_{w}d"] = rng.poisson(activity * w / 30).astype(np.int32)
        cols[f"avg_basket_{w}d"] = rng.gamma(4.0, 12.0, n).astype(np.float32)
        cols[f"support_tickets_{w}d"] = rng.poisson(0.02 * w / 30 + 0.1, n).astype(np.int16)
    for w in (90, 365):
        cols[f"returns_{w}d"] = rng.poisson(0.1 * w / 30, n).astype(np.int16)
        cols[f"discount_share_{w}d"] = rng.beta(2, 5, n).astype(np.float32)
    for w in (30, 90):
        cols[f"email_open_rate_{w}d"] = rng.beta(2, 3, n).astype(np.float32)
        cols[f"email_click_rate_{w}d"] = (cols[f"email_open_rate_{w}d"] * rng.beta(1, 4, n)).astype(
            np.float32
        )
    for w in (7, 30, 90):
        cols[f"app_sessions_{w}d"] = rng.poisson(activity * w / 5).astype(np.int32)
        cols[f"web_sessions_{w}d"] = rng.poisson(activity * w / 8).astype(np.int32)
    shares = rng.dirichlet(np.ones(len(CATEGORIES)), n).astype(np.float32)
    for j, c in enumerate(CATEGORIES):
        cols[f"share_{c}"] = shares[:, j]
    for flag in FLAGS:
        cols[flag] = rng.random(n) < rng.uniform(0.2, 0.7)
    cols["payment_failures_90d"] = rng.poisson(0.05, n).astype(np.int16)
    cols["days_since_login"] = rng.exponential(20 / activity).astype(np.float32)
    cols["num_devices"] = rng.integers(1, 6, n).astype(np.int8)
    cols["household_size"] = rng.integers(1, 7, n).astype(np.int8)
    cols["credit_score"] = rng.normal(680, 60, n).clip(300, 850).astype(np.float32)
    cols["distance_to_store_km"] = rng.lognormal(2.0, 0.8, n).astype(np.float32)
    for name in ("age", "credit_score", "days_since_login", "avg_basket_30d"):
        cols[name][rng.random(n) < 0.03] = np.nan  # unknown for a few per cent of customers
    return cols


def churn_label(cols: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A plausible churn rule: inactive, unengaged, recently troubled customers leave."""
    z = (
        -1.0
        + 0.025 * cols["recency_days"]
        - 0.15 * np.log1p(cols["visits_90d"])
        - 0.004 * cols["tenure_months"]
        + 0.6 * cols["support_tickets_90d"]
        + 0.8 * cols["payment_failures_90d"]
        - 0.7 * cols["has_app"]
        - 1.2 * cols["email_open_rate_30d"]
        + 1.5 * cols["discount_share_365d"]
        + 0.5 * np.isnan(cols["credit_score"])
    )
    return (rng.random(z.shape[0]) < 1.0 / (1.0 + np.exp(-z))).astype(np.int8)


def feature_names() -> list[str]:
    sample = customers(1, np.random.default_rng(0))
    return [c for c in sample if c != "customer_id"]


def _table(cols: dict[str, np.ndarray]) -> pa.Table:
    arrays = {}
    for name, values in cols.items():
        mask = np.isnan(values) if values.dtype.kind == "f" else None
        arrays[name] = pa.array(values, mask=mask)
    return pa.table(arrays)


def write_lake(root: Path, rows: int, *, seed: int = LAKE_SEED) -> None:
    """Write ``rows`` customers hive-partitioned by region, one file per region."""
    marker = root / "_demo.json"
    if marker.exists() and json.loads(marker.read_text()) == {"rows": rows, "seed": seed}:
        log.info("demo lake %s already holds %d customers", root, rows)
        return
    rng = np.random.default_rng(seed)
    per_region = np.full(len(REGIONS), rows // len(REGIONS))
    per_region[: rows % len(REGIONS)] += 1
    first_id = 0
    for region, n in zip(REGIONS, per_region, strict=True):
        part = root / f"region={region}"
        part.mkdir(parents=True, exist_ok=True)
        for old in part.glob("*.parquet"):
            old.unlink()
        pq.write_table(
            _table(customers(int(n), rng, first_id)),
            part / "part-0.parquet",
            row_group_size=ROW_GROUP_ROWS,
        )
        first_id += int(n)
    marker.write_text(json.dumps({"rows": rows, "seed": seed}))
    log.info("wrote demo lake %s: %d customers in %d regions", root, rows, len(REGIONS))


def train_model(path: Path, *, seed: int = TRAIN_SEED, rows: int = TRAIN_ROWS) -> None:
    """Train the demo churn model (XGBoost, fixed seed) on freshly generated customers."""
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    cols = customers(rows, rng)
    y = churn_label(cols, rng)
    names = feature_names()
    X = np.column_stack([cols[n].astype(np.float32) for n in names])
    dtrain = xgb.DMatrix(X, label=y, feature_names=names)
    params = {
        "objective": "binary:logistic",
        "max_depth": 6,
        "eta": 0.1,
        "subsample": 0.8,
        "tree_method": "hist",
        "seed": seed,
        "nthread": 2,
        "eval_metric": "auc",
    }
    booster = xgb.train(params, dtrain, num_boost_round=100)
    path.parent.mkdir(parents=True, exist_ok=True)
    booster.save_model(path)
    log.info("trained demo churn model %s (100 trees, depth 6)", path)


def prepare(root: Path, rows: int) -> DemoPaths:
    paths = DemoPaths(root)
    write_lake(paths.lake, rows)
    if not paths.model.exists():
        train_model(paths.model)
    return paths
