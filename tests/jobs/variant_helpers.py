"""Helpers of the registry, variant and evaluate tests: a second model and a registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from scoring_helpers import FEATURES, customer_columns, feature_matrix

from engine.registry import Registry

#: the challenger's features in another order than the champion's (the scorer permutes)
CHALLENGER_ORDER = (5, 4, 3, 2, 1, 0)


def train_challenger(path: Path, seed: int = 77) -> None:
    """A binary:logistic XGBoost model over the same features, listed in another order."""
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    table = pa.table(customer_columns(3000, rng))
    X = feature_matrix(table)[:, list(CHALLENGER_ORDER)]
    z = 0.5 - 0.15 * X[:, 4] + 1.5 * np.nan_to_num(X[:, 0], nan=0.3)
    y = (rng.random(len(z)) < 1 / (1 + np.exp(-z))).astype(np.float32)
    names = [FEATURES[i] for i in CHALLENGER_ORDER]
    dtrain = xgb.DMatrix(X, label=y, feature_names=names, missing=np.nan)
    params = {"objective": "binary:logistic", "max_depth": 3, "seed": seed, "nthread": 1}
    xgb.train(params, dtrain, num_boost_round=12).save_model(path)


def challenger_oracle(model: Path, table: pa.Table) -> np.ndarray:
    import xgboost as xgb

    booster = xgb.Booster(model_file=str(model))
    X = feature_matrix(table)[:, list(CHALLENGER_ORDER)]
    return booster.inplace_predict(X, missing=np.nan)


def make_registry(root: Path, champion: Path, challenger: Path) -> Registry:
    """churn@1 (champion, alias ``champion``) and churn@2 (challenger)."""
    registry = Registry(str(root))
    registry.register(champion, "churn")
    registry.register(challenger, "churn")
    registry.set_alias("churn", 1, "champion")
    return registry


def variants_job(
    tmp_path: Path,
    lake: Path,
    registry: Path,
    *,
    weights: tuple[float, float] = (0.8, 0.2),
    shadow: bool = False,
    extra: str = "",
    name: str = "job.toml",
) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    job = tmp_path / name
    job.write_text(
        f'source = "{lake}"\nsink = "{tmp_path / "scores"}"\nid_column = "customer_id"\n'
        f'registry = "{registry}"\n{extra}'
        f'[variants]\nsalt = "nov-campaign"\nshadow = {str(shadow).lower()}\n'
        "[variants.models]\n"
        f'champion = {{ model = "churn@champion", weight = {weights[0]} }}\n'
        f'challenger = {{ model = "churn@2", weight = {weights[1]} }}\n'
    )
    return job


# ---- fixtures (conftest.py imports them for every test module of the folder)
@pytest.fixture(scope="module")
def challenger_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("challenger") / "challenger.json"
    train_challenger(path)
    return path


@pytest.fixture
def registry_root(model_file: Path, challenger_file: Path, tmp_path: Path) -> Path:
    make_registry(tmp_path / "reg", model_file, challenger_file)
    return tmp_path / "reg"
