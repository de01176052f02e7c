"""Bad model files: every loader either gives a scoreable forest or a one-line KernelError.

Valid files of every supported format are built once per module from fixed seeds (XGBoost
JSON and UBJSON: binary, multiclass and categorical; LightGBM text with NaN and a
categorical feature; scikit-learn as skops: a random forest and histogram boosting), then
mutated by Hypothesis (derandomized, bounded): bytes flipped, replaced, deleted, inserted,
duplicated, files truncated, numbers in the text formats replaced by huge, negative, NaN,
infinite or empty values, LightGBM lines swapped, JSON lists lengthened or shortened, and
bytes of one format spliced into another.

The property (:func:`check_model_file`): ``kernels.load_model(path, cache=False)`` either

* returns a forest that ``compile_model(forest, backend="numba").predict(X)`` scores on a
  small float32 ``X`` with NaN, with the right output shape, or
* raises a :class:`kernels.KernelError` whose message names the file and is one line.

Any other exception, a hang (:data:`EXAMPLE_SECONDS`) or a giant allocation (the address
space is capped at :data:`MEMORY_HEADROOM` above the process's while an example runs) is a
failure. The loop runs in the test process so that a segfault takes the run down with it.

The targeted ``test_bugN_*`` cases below are the inputs this fuzzing first found to break
the loaders (an escaped OverflowError or RecursionError, a child cycle that looped for
ever, unbounded sizes from a damaged header, a zero-width UBJSON array with a huge count);
each now fails cleanly and stays here as a regression test.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import resource
import signal
import struct
import subprocess
import sys
import traceback
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernels

ROOT = Path(__file__).resolve().parents[1]
#: Longest one example (load, compile, predict) may take before it counts as a hang.
EXAMPLE_SECONDS = 5.0
#: Address space an example may add to the process before an allocation fails.
MEMORY_HEADROOM = 3 << 30

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
    ],
)
#: A hung example is stopped by :func:`guarded` first; this only catches a stuck guard.
TIMEOUT = pytest.mark.timeout(240, method="thread")


# --- valid model files ---------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFile:
    name: str
    suffix: str  # ".json", ".ubj", ".txt", ".skops"
    data: bytes


def _xgb_data(seed: int, n: int = 300, d: int = 4) -> tuple[np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[rng.random((n, d)) < 0.1] = np.nan
    return X, rng


def _build_models(folder: Path) -> dict[str, ModelFile]:
    import lightgbm as lgb
    import skops.io as sio
    import xgboost as xgb
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier

    out: dict[str, ModelFile] = {}

    def save_xgb(name: str, booster: xgb.Booster) -> None:
        for suffix in (".json", ".ubj"):
            booster.save_model(folder / f"{name}{suffix}")
            key = f"xgb-{name}-{suffix[1:]}"
            out[key] = ModelFile(key, suffix, (folder / f"{name}{suffix}").read_bytes())

    base = {"max_depth": 3, "eta": 0.3, "seed": 0, "nthread": 1, "tree_method": "hist"}
    X, rng = _xgb_data(1)
    y = (np.nan_to_num(X[:, 0]) + rng.logistic(size=len(X)) > 0).astype(np.float64)
    booster = xgb.train({**base, "objective": "binary:logistic"}, xgb.DMatrix(X, y), 4)
    save_xgb("binary", booster)

    X, rng = _xgb_data(2)
    y = np.digitize(np.nan_to_num(X[:, 1]) + 0.3 * rng.normal(size=len(X)), [-0.5, 0.5])
    params = {**base, "objective": "multi:softprob", "num_class": 3}
    save_xgb("multiclass", xgb.train(params, xgb.DMatrix(X, y), 2))

    X, rng = _xgb_data(3, d=3)
    X[:, 0] = rng.integers(0, 12, len(X))
    y = np.isin(X[:, 0], [1, 3, 5, 7]) * 2.0 + np.nan_to_num(X[:, 1])
    dtrain = xgb.DMatrix(X, y, feature_types=["c", "q", "q"], enable_categorical=True)
    params = {**base, "max_cat_to_onehot": 1}
    save_xgb("categorical", xgb.train(params, dtrain, 3))

    rng = np.random.default_rng(4)
    n = 400
    X = rng.normal(size=(n, 4))
    X[:, 3] = rng.integers(0, 6, n)
    X[rng.random((n, 4)) < 0.15] = np.nan
    y = np.nan_to_num(X[:, 0]) + np.isin(X[:, 3], [1, 4]) + 0.5 * rng.normal(size=n) > 0.5
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 5, "min_data_in_leaf": 5, "verbose": -1,
         "seed": 0, "num_threads": 1, "min_data_per_group": 5, "cat_smooth": 1.0},
        lgb.Dataset(X, y.astype(float), categorical_feature=[3]),
        num_boost_round=3,
    )  # fmt: skip
    text = booster.model_to_string().encode()
    out["lgb-binary-txt"] = ModelFile("lgb-binary-txt", ".txt", text)

    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    rf = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y)
    out["skops-rf"] = ModelFile("skops-rf", ".skops", sio.dumps(rf))
    X[rng.random(X.shape) < 0.1] = np.nan
    hgb = HistGradientBoostingRegressor(max_iter=3, max_depth=3, random_state=0)
    hgb.fit(X, np.nan_to_num(X[:, 0]) * 2.0 + rng.normal(size=200))
    out["skops-hgb"] = ModelFile("skops-hgb", ".skops", sio.dumps(hgb))
    return out


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelFile]:
    return _build_models(tmp_path_factory.mktemp("fuzz-models"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-cases")


def test_valid_models_load_and_score(model_files, workdir):
    """The unmutated files are what the fuzz starts from: each must load and score."""
    assert {m.suffix for m in model_files.values()} == {".json", ".ubj", ".txt", ".skops"}
    for model in model_files.values():
        path = workdir / f"valid-{model.name}{model.suffix}"
        path.write_bytes(model.data)
        assert check_model_file(path) == "scored", model.name
    categorical = [m for m in model_files.values() if "categorical" in m.name]
    for model in categorical:
        forest = kernels.load_model(workdir / f"valid-{model.name}{model.suffix}", cache=False)
        assert forest.has_categorical
    lgb_forest = kernels.load_model(workdir / "valid-lgb-binary-txt.txt", cache=False)
    assert lgb_forest.has_categorical


# --- the property --------------------------------------------------------------------------


class Hang(BaseException):
    """An example ran past :data:`EXAMPLE_SECONDS` (a BaseException: no loader swallows it)."""


@contextlib.contextmanager
def guarded(seconds: float = EXAMPLE_SECONDS) -> Iterator[None]:
    """Stop the example after ``seconds`` and cap the address space it may add."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + MEMORY_HEADROOM
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, previous)


def _address_space() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    return pages * resource.getpagesize()


def _probe_matrix(num_features: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    X = rng.normal(scale=3.0, size=(7, num_features)).astype(np.float32)
    X[rng.random(X.shape) < 0.3] = np.nan
    X[0] = np.nan
    if num_features:
        X[1, :] = np.arange(num_features) % 5  # small whole numbers: categories
    return X


class PropertyFailure(AssertionError):
    """The property failed: ``kind`` is the exception's type, ``frames`` the project
    functions it passed through (innermost last), as ``file.py:function``."""

    def __init__(self, message: str, kind: str = "", frames: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.kind = kind
        self.frames = frames


def _frames(exc: BaseException) -> tuple[str, ...]:
    return tuple(
        f"{Path(frame.filename).name}:{frame.name}"
        for frame in traceback.extract_tb(exc.__traceback__)
        if str(ROOT / "kernels") in frame.filename
    )


def check_model_file(path: Path, seconds: float = EXAMPLE_SECONDS) -> str:
    """The property: ``"scored"`` or ``"rejected"``; anything else raises PropertyFailure."""
    try:
        with guarded(seconds), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                forest = kernels.load_model(path, cache=False)
            except kernels.KernelError as exc:
                message = str(exc)
                if str(path) not in message:
                    raise PropertyFailure(f"message does not name the file: {message!r}") from exc
                if "\n" in message or "\r" in message:
                    raise PropertyFailure(f"message is not one line: {message!r}") from exc
                return "rejected"
            assert isinstance(forest, kernels.Forest)
            kernel = kernels.compile_model(forest, backend="numba")
            X = _probe_matrix(forest.num_features)
            pred = kernel.predict(X)
    except PropertyFailure:
        raise
    except BaseException as exc:
        frames = _frames(exc)
        where = " < ".join(reversed(frames[-4:]))
        message = f"{path.name}: {type(exc).__name__}: {str(exc)[:300]} (in {where})"
        raise PropertyFailure(message, type(exc).__name__, frames) from exc
    expected = (X.shape[0],) if forest.num_outputs == 1 else (X.shape[0], forest.num_outputs)
    if pred.shape != expected or pred.dtype != np.float32:
        raise PropertyFailure(f"{path.name}: output {pred.dtype}{pred.shape}, not {expected}")
    return "scored"


def write_case(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# --- mutations -----------------------------------------------------------------------------

#: Values a number in a text format is replaced with.
WEIRD_NUMBERS = (
    "", "-", "0", "-0", "1", "-1", "-2", "2147483647", "2147483648", "-2147483649",
    "4294967296", "9223372036854775808", "99999999999999999999999999", "1e308", "1e400",
    "-1e400", "1e-400", "3.5", "-0.5", "NaN", "nan", "inf", "-inf", "Infinity", "-Infinity",
    "1e9", "100000", "0x10", "1_000", "١",
)  # fmt: skip
NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@st.composite
def byte_mutation(draw: st.DrawFn, data: bytes, others: list[bytes]) -> bytes:
    """One or a few generic byte-level edits of ``data``."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        n = len(out)
        kind = draw(
            st.sampled_from(
                ["flip", "replace", "delete", "insert", "truncate", "duplicate", "splice"]
            )
        )
        if n == 0:
            kind = "insert"
        pos = draw(st.integers(0, max(n - 1, 0)))
        if kind == "flip":
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "replace":
            chunk = draw(st.binary(min_size=1, max_size=8))
            out[pos : pos + len(chunk)] = chunk
        elif kind == "delete":
            del out[pos : pos + draw(st.integers(1, 64))]
        elif kind == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "truncate":
            # every kind of position: near the start, anywhere, near the end
            where = draw(st.sampled_from(["start", "any", "end"]))
            cut = {"start": min(pos, 16), "any": pos, "end": max(n - 1 - pos % 32, 0)}[where]
            del out[cut:]
        elif kind == "duplicate":
            end = min(n, pos + draw(st.integers(1, 200)))
            at = draw(st.integers(0, n))
            out[at:at] = out[pos:end]
        else:  # splice bytes of another format
            other = draw(st.sampled_from(others))
            start = draw(st.integers(0, max(len(other) - 1, 0)))
            chunk = other[start : start + draw(st.integers(1, 256))]
            if draw(st.booleans()):
                out[pos : pos + len(chunk)] = chunk
            else:
                out[pos:pos] = chunk
    return bytes(out)


@st.composite
def number_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    """Replace one to three numbers of a text format with a weird value."""
    matches = list(NUMBER.finditer(data))
    out = data
    for _ in range(draw(st.integers(1, 3))):
        matches = list(NUMBER.finditer(out))
        m = matches[draw(st.integers(0, len(matches) - 1))]
        value = draw(st.sampled_from(WEIRD_NUMBERS)).encode()
        out = out[: m.start()] + value + out[m.end() :]
    return out


@st.composite
def line_swap(draw: st.DrawFn, data: bytes) -> bytes:
    lines = data.split(b"\n")
    i = draw(st.integers(0, len(lines) - 1))
    j = draw(st.integers(0, len(lines) - 1))
    lines[i], lines[j] = lines[j], lines[i]
    if draw(st.booleans()):  # and sometimes drop or repeat a line
        k = draw(st.integers(0, len(lines) - 1))
        if draw(st.booleans()):
            del lines[k]
        else:
            lines.insert(k, lines[k])
    return b"\n".join(lines)


def _lists(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _lists(value, (*path, key))
    elif isinstance(doc, list):
        yield path
        for i, value in enumerate(doc):
            yield from _lists(value, (*path, i))


@st.composite
def json_list_length(draw: st.DrawFn, data: bytes) -> bytes:
    """Lengthen, shorten or empty one JSON list (XGBoost's per-node arrays, tree lists...)."""
    doc = json.loads(data)
    paths = list(_lists(doc))
    path = draw(st.sampled_from(paths))
    target = doc
    for key in path:
        target = target[key]
    op = draw(st.sampled_from(["drop-last", "drop-first", "repeat", "empty", "append"]))
    if op == "drop-last" and target:
        target.pop()
    elif op == "drop-first" and target:
        target.pop(0)
    elif op == "repeat" and target:
        target.append(target[-1])
    elif op == "empty":
        target.clear()
    else:
        target.append(draw(st.sampled_from([0, -1, 1, 10**6, 1e30, None, "x", [], {}])))
    return json.dumps(doc).encode()


@st.composite
def skops_member_mutation(draw: st.DrawFn, data: bytes, others: list[bytes]) -> bytes:
    """Mutate one member of the skops zip (its schema.json or an .npy array), re-zipped so
    the damage reaches skops' decoder rather than only the zip CRC check."""
    src = zipfile.ZipFile(io.BytesIO(data))
    names = src.namelist()
    target = draw(st.sampled_from(names))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as dst:
        for name in names:
            body = src.read(name)
            if name == target:
                if name.endswith(".json") and draw(st.booleans()):
                    body = draw(number_mutation(body))
                else:
                    body = draw(byte_mutation(body, others))
            dst.writestr(name, body)
    return buf.getvalue()


def mutations(model: ModelFile, others: list[bytes]) -> st.SearchStrategy[bytes]:
    options: list[st.SearchStrategy[bytes]] = [byte_mutation(model.data, others)]
    if model.suffix in (".json", ".txt"):
        options.append(number_mutation(model.data))
    if model.suffix == ".json":
        options.append(json_list_length(model.data))
    if model.suffix == ".txt":
        options.append(line_swap(model.data))
    if model.suffix == ".skops":
        options.append(skops_member_mutation(model.data, others))
    return st.one_of(options)


def run_property(path: Path) -> str:
    return check_model_file(path)


# --- the fuzz loops ------------------------------------------------------------------------

FUZZED = [
    "xgb-binary-json",
    "xgb-binary-ubj",
    "xgb-multiclass-json",
    "xgb-multiclass-ubj",
    "xgb-categorical-json",
    "xgb-categorical-ubj",
    "lgb-binary-txt",
    "skops-rf",
    "skops-hgb",
]


@TIMEOUT
@pytest.mark.parametrize("name", FUZZED)
def test_mutated_files_load_or_fail_cleanly(model_files, workdir, name):
    model = model_files[name]
    others = [m.data for m in model_files.values() if m.suffix != model.suffix]
    outcomes: dict[str, int] = {}

    @FUZZ
    @given(mutated=mutations(model, others))
    def fuzz(mutated: bytes) -> None:
        outcome = run_property(write_case(workdir, f"{name}{model.suffix}", mutated))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    fuzz()
    # The mutations must not all be trivially rejected (nor all be no-ops).
    assert outcomes.get("rejected", 0) > 0, outcomes


# --- targeted cases ------------------------------------------------------------------------


def _xgb_doc(model_files: dict[str, ModelFile], name: str = "xgb-binary-json") -> dict:
    return json.loads(model_files[name].data)


def _tree0(doc: dict) -> dict:
    return doc["learner"]["gradient_booster"]["model"]["trees"][0]


def _params(doc: dict) -> dict:
    return doc["learner"]["learner_model_param"]


def _lgb_text(model_files: dict[str, ModelFile]) -> str:
    return model_files["lgb-binary-txt"].data.decode()


def _sub_first(pattern: str, repl: str, text: str) -> str:
    out, n = re.subn(pattern, repl, text, count=1, flags=re.MULTILINE)
    assert n == 1, pattern
    return out


def expect_rejected(
    workdir: Path, name: str, data: bytes, error: type[kernels.KernelError] | None = None
) -> None:
    path = write_case(workdir, name, data)
    assert check_model_file(path) == "rejected"
    if error is not None:
        with pytest.raises(error):
            kernels.load_model(path, cache=False)


def _xgb_edit(model_files, edit: Callable[[dict], Any], name: str = "xgb-binary-json") -> bytes:
    doc = _xgb_doc(model_files, name)
    edit(doc)
    return json.dumps(doc).encode()


XGB_FORMAT_ERRORS: dict[str, Callable[[dict], Any]] = {
    "feature-index-out-of-range": lambda d: _tree0(d)["split_indices"].__setitem__(0, 4),
    "feature-index-negative": lambda d: _tree0(d)["split_indices"].__setitem__(0, -1),
    "left-child-out-of-range": lambda d: _tree0(d)["left_children"].__setitem__(0, 13),
    "right-child-out-of-range": lambda d: _tree0(d)["right_children"].__setitem__(0, 99),
    "right-child-negative": lambda d: _tree0(d)["right_children"].__setitem__(0, -1),
    "arrays-of-different-lengths": lambda d: _tree0(d)["split_conditions"].pop(),
    "empty-tree": lambda d: [v.clear() for v in _tree0(d).values() if isinstance(v, list)],
    "tree-info-out-of-range": lambda d: d["learner"]["gradient_booster"]["model"].__setitem__(
        "tree_info", [0, 0, 0, 5]
    ),
    "num-class-with-binary-objective": lambda d: _params(d).__setitem__("num_class", "3"),
    "base-score-outside-0-1": lambda d: _params(d).__setitem__("base_score", "[1.5E0]"),
    "base-score-nan": lambda d: _params(d).__setitem__("base_score", "NaN"),
    "num-feature-empty": lambda d: _params(d).__setitem__("num_feature", ""),
    "trees-not-a-list": lambda d: d["learner"]["gradient_booster"]["model"].__setitem__("trees", 7),
}


@pytest.mark.parametrize("case", list(XGB_FORMAT_ERRORS))
def test_xgboost_format_errors(model_files, workdir, case):
    data = _xgb_edit(model_files, XGB_FORMAT_ERRORS[case])
    expect_rejected(workdir, f"{case}.json", data, kernels.ModelFormatError)


@pytest.mark.parametrize(
    ("objective", "booster"),
    [("rank:pairwise", "gbtree"), ("survival:cox", "gbtree"), ("binary:logistic", "gblinear")],
)
def test_xgboost_unsupported_models(model_files, workdir, objective, booster):
    def edit(doc: dict) -> None:
        doc["learner"]["objective"]["name"] = objective
        doc["learner"]["gradient_booster"]["name"] = booster

    data = _xgb_edit(model_files, edit)
    expect_rejected(workdir, "unsupported.json", data, kernels.UnsupportedModelError)


def _lgb_tree_edit(text: str, key: str, value: str) -> str:
    """Replace ``key=`` in the first tree block."""
    return _sub_first(rf"^{key}=.*$", f"{key}={value}", text[text.index("Tree=0") :]).join(
        [text[: text.index("Tree=0")], ""]
    )


def _lgb_leaves(text: str) -> int:
    return int(re.search(r"^num_leaves=(\d+)$", text, re.MULTILINE).group(1))


LGB_FORMAT_ERRORS: dict[str, Callable[[str], str]] = {
    "negative-num-leaves": lambda t: _lgb_tree_edit(t, "num_leaves", "-3"),
    "zero-num-leaves": lambda t: _lgb_tree_edit(t, "num_leaves", "0"),
    "huge-num-leaves": lambda t: _lgb_tree_edit(t, "num_leaves", "9" * 30),
    "feature-index-out-of-range": lambda t: _lgb_tree_edit(
        t, "split_feature", " ".join(["4"] * (_lgb_leaves(t) - 1))
    ),
    "child-cycle": lambda t: _lgb_tree_edit(
        t, "left_child", " ".join(["0"] * (_lgb_leaves(t) - 1))
    ),
    "child-out-of-range": lambda t: _lgb_tree_edit(
        t, "right_child", " ".join(["-99"] * (_lgb_leaves(t) - 1))
    ),
    "nan-threshold": lambda t: _lgb_tree_edit(
        t, "threshold", " ".join(["nan"] * (_lgb_leaves(t) - 1))
    ),
    "no-end-of-trees": lambda t: t.replace("end of trees", "end of tree"),
    "zero-outputs": lambda t: _sub_first(
        r"^num_tree_per_iteration=.*$", "num_tree_per_iteration=0", t
    ),
    "feature-names-too-short": lambda t: _sub_first(r"^feature_names=.*$", "feature_names=a", t),
}


@pytest.mark.parametrize("case", list(LGB_FORMAT_ERRORS))
def test_lightgbm_format_errors(model_files, workdir, case):
    text = LGB_FORMAT_ERRORS[case](_lgb_text(model_files))
    expect_rejected(workdir, f"{case}.txt", text.encode(), kernels.ModelFormatError)


@pytest.mark.parametrize("objective", ["lambdarank_v2", "regression sqrt", "multiclassova_x"])
def test_lightgbm_unsupported_objective(model_files, workdir, objective):
    text = _sub_first(r"^objective=.*$", f"objective={objective}", _lgb_text(model_files))
    expect_rejected(workdir, "objective.txt", text.encode(), kernels.UnsupportedModelError)


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("xgb-binary-json", "model.txt"),
        ("xgb-multiclass-ubj", "model.json"),
        ("xgb-categorical-json", "model.ubj"),
        ("lgb-binary-txt", "model.json"),
        ("lgb-binary-txt", "model.ubj"),
        ("skops-rf", "model.json"),
        ("skops-hgb", "model.txt"),
    ],
)
def test_wrong_extension_loads_by_content_or_fails_cleanly(model_files, workdir, source, name):
    path = write_case(workdir, f"{source}-{name}", model_files[source].data)
    outcome = check_model_file(path)
    # XGBoost and LightGBM are recognised by their first bytes; a skops zip needs its name.
    assert outcome == ("rejected" if source.startswith("skops") else "scored")


def test_cross_format_files_fail_cleanly(model_files, workdir):
    """Each format's bytes under each other format's name, and the halves of two formats
    glued together."""
    items = list(model_files.values())
    for model in items:
        for other in items:
            if other.suffix == model.suffix:
                continue
            check_model_file(write_case(workdir, f"as-{model.name}{other.suffix}", model.data))
            glued = other.data[: len(other.data) // 2] + model.data[len(model.data) // 2 :]
            check_model_file(write_case(workdir, f"glued-{model.name}{other.suffix}", glued))


def test_every_truncation_of_small_files_fails_cleanly(model_files, workdir):
    """Truncation at every position of the UBJSON file (binary framing) and at every line
    of the LightGBM file; the JSON files at a stride (every cut of them is bad JSON)."""
    ubj = model_files["xgb-binary-ubj"].data
    for cut in range(0, len(ubj), 7):
        assert check_model_file(write_case(workdir, "cut.ubj", ubj[:cut])) == "rejected", cut
    text = model_files["lgb-binary-txt"].data
    trees_end = text.index(b"end of trees")
    for cut in [m.end() for m in re.finditer(rb"\n", text[:trees_end])]:
        assert check_model_file(write_case(workdir, "cut.txt", text[:cut])) == "rejected", cut
    js = model_files["xgb-multiclass-json"].data
    for cut in range(1, len(js), max(1, len(js) // 150)):
        assert check_model_file(write_case(workdir, "cut.json", js[:cut])) == "rejected", cut


# --- the CLI -------------------------------------------------------------------------------

CLI_CASES: dict[str, Callable[[dict[str, ModelFile]], tuple[str, bytes]]] = {
    "truncated-json": lambda m: ("m.json", m["xgb-binary-json"].data[:500]),
    "truncated-ubj": lambda m: ("m.ubj", m["xgb-multiclass-ubj"].data[:777]),
    "lightgbm-negative-leaves": lambda m: (
        "m.txt",
        _lgb_tree_edit(_lgb_text(m), "num_leaves", "-3").encode(),
    ),
    "corrupt-skops": lambda m: ("m.skops", m["skops-rf"].data[:40] + b"\x00" * 64),
    "feature-out-of-range": lambda m: (
        "m.json",
        _xgb_edit(m, XGB_FORMAT_ERRORS["feature-index-out-of-range"]),
    ),
    "text-named-json": lambda m: ("m.json", b"not a model\n"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_inspect_bad_model_exits_2_with_one_line(model_files, workdir, case):
    name, data = CLI_CASES[case](model_files)
    path = write_case(workdir, f"cli-{case}-{name}", data)
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "inspect", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("lakescore: error: ") and str(path) in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


# --- known bugs, reported -----------------------------------------------------------------


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: _tree0(d)["default_left"].__setitem__(0, -1),
        lambda d: _tree0(d)["default_left"].__setitem__(0, 256),
        lambda d: _tree0(d)["split_indices"].__setitem__(0, 2**63),
        lambda d: _tree0(d)["left_children"].__setitem__(0, 2**64),
        lambda d: d["learner"]["gradient_booster"]["model"].__setitem__(
            "tree_info", [0, 0, 0, 2**31]
        ),
    ],
    ids=["default_left=-1", "default_left=256", "split_index=2**63", "left=2**64", "tree_info"],
)
def test_bug1_xgboost_overflow(model_files, workdir, edit):
    check_model_file(write_case(workdir, "bug1.json", _xgb_edit(model_files, edit)))


def _cycle(doc: dict) -> None:
    _tree0(doc)["left_children"][1] = 0  # node 1's left child is the root


def _self_loop(doc: dict) -> None:
    _tree0(doc)["left_children"][0] = 0


def _shared_chain(doc: dict) -> None:
    """A 40-node chain whose nodes send both branches to the next: a DAG, not a tree, that
    breadth_first unrolls into 2**40 nodes."""
    tree = _tree0(doc)
    n = 41
    tree["left_children"] = [*range(1, n), -1]
    tree["right_children"] = [*range(1, n), -1]
    for key, fill in (("split_indices", 0), ("split_conditions", 0.5), ("default_left", 0),
                      ("split_type", 0), ("base_weights", 0.0), ("loss_changes", 0.0),
                      ("sum_hessian", 1.0), ("parents", 0)):  # fmt: skip
        tree[key] = [fill] * n
    tree["tree_param"]["num_nodes"] = str(n)


@pytest.mark.parametrize("edit", [_cycle, _self_loop, _shared_chain])
def test_bug2_xgboost_children_not_a_tree(model_files, workdir, edit):
    check_model_file(write_case(workdir, "bug2.json", _xgb_edit(model_files, edit)), seconds=1)


@pytest.mark.parametrize("fmt", ["json"])
def test_bug3_xgboost_huge_num_feature(model_files, workdir, fmt):
    data = _xgb_edit(model_files, lambda d: _params(d).__setitem__("num_feature", "1000000000"))
    check_model_file(write_case(workdir, f"bug3.{fmt}", data), seconds=1)


@pytest.mark.parametrize("num_class", ["100000000", "1000000000000"])
def test_bug4_xgboost_huge_num_class(model_files, workdir, num_class):
    data = _xgb_edit(
        model_files,
        # XGBoost < 3 writes one base_score for every class
        lambda d: _params(d).update(num_class=num_class, base_score="5E-1"),
        name="xgb-multiclass-json",
    )
    check_model_file(write_case(workdir, "bug4.json", data), seconds=1)


def test_bug5_deep_json(workdir):
    data = b'{"learner":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    check_model_file(write_case(workdir, "bug5.json", data))


def test_bug6_deep_ubjson(workdir):
    check_model_file(write_case(workdir, "bug6.ubj", b"{U\x01a" + b"[" * 100_000))


@pytest.mark.parametrize("marker", [b"T", b"F", b"Z"])
def test_bug7_ubjson_zero_width_typed_array(workdir, marker):
    data = b"{U\x01a[$" + marker + b"#L" + struct.pack(">q", 1 << 40) + b"}"
    check_model_file(write_case(workdir, "bug7.ubj", data), seconds=1)


def test_bug8_lightgbm_average_output_without_trees(model_files, workdir):
    text = _lgb_text(model_files)
    head, tail = text[: text.index("Tree=0")], text[text.index("end of trees") :]
    data = (head.replace("\ntree_sizes=", "\naverage_output\ntree_sizes=") + tail).encode()
    check_model_file(write_case(workdir, "bug8.txt", data))


def test_bug9_lightgbm_deep_pandas_categorical(model_files, workdir):
    nested = "[" * 100_000 + "]" * 100_000
    text = _sub_first(
        r"^pandas_categorical:.*$", f"pandas_categorical:{nested}", _lgb_text(model_files)
    )
    check_model_file(write_case(workdir, "bug9.txt", text.encode()))
