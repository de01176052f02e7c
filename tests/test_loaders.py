"""Model loaders: XGBoost JSON/UBJSON -> Forest, format detection, errors, the UBJSON decoder.

XGBoost's own serialisation (``Booster.save_raw("json")``) is the reference throughout;
the Forest is never checked against itself.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import struct

import numpy as np
import pytest
from agreement import registry
from agreement.xgb_cases import (
    UNSUPPORTED,
    model_json,
    reachable_nodes,
    train_unsupported,
    tree_depths,
    xgb_trees,
)

import kernels
from kernels.loaders import _ubjson, detect_format
from kernels.loaders._ubjson import UBJSONError

#: The registry's single-output XGBoost models without categorical splits (multiclass and
#: categorical ones: test_loaders_xgboost_kinds below).
CASES = {
    case.name: case
    for case in registry.family("xgboost")
    if not case.objective.startswith("multi:") and not case.train.categorical
}
NAMES = list(CASES)
FORMATS = ("json", "ubj")
ALL = pytest.mark.parametrize("name", NAMES)


def _model(zoo, name):
    """(trained registry entry, its XGBoost JSON document)."""
    trained = zoo.trained(CASES[name])
    return trained, model_json(trained.model)


NODE_ARRAYS = ("feature", "threshold", "left", "right", "default_left", "value")
LINKS = {
    "binary:logistic": "sigmoid",
    "reg:logistic": "sigmoid",
    "binary:logitraw": "identity",
    "reg:squarederror": "identity",
    "reg:absoluteerror": "identity",
    "count:poisson": "exp",
    "reg:gamma": "exp",
    "reg:tweedie": "exp",
}


def base_score(model_json: dict) -> float:
    """``base_score`` as XGBoost stores it (``"[5E-1]"`` since XGBoost 3)."""
    return float(model_json["learner"]["learner_model_param"]["base_score"].strip("[]"))


# --- JSON and UBJ describe the same forest -----------------------------------------------


@ALL
def test_json_and_ubj_give_identical_forests(zoo, name):
    from_json, from_ubj = zoo.forest(CASES[name], "json"), zoo.forest(CASES[name], "ubj")
    for key, arr in from_json.arrays().items():
        other = from_ubj.arrays()[key]
        assert arr.dtype == other.dtype, key
        np.testing.assert_array_equal(arr, other, err_msg=key)
    for attr in ("link", "num_features", "feature_names", "objective", "metadata"):
        assert getattr(from_json, attr) == getattr(from_ubj, attr), attr
    assert from_json.fingerprint() == from_ubj.fingerprint()
    assert (from_json.source_format, from_ubj.source_format) == ("xgboost-json", "xgboost-ubj")


@ALL
@pytest.mark.parametrize("fmt", FORMATS)
def test_array_dtypes_and_read_only(zoo, name, fmt):
    forest = zoo.forest(CASES[name], fmt)
    expected = {
        "feature": np.int32,
        "threshold": np.float32,
        "left": np.int32,
        "right": np.int32,
        "default_left": np.uint8,
        "value": np.float64,
        "tree_offsets": np.int64,
        "tree_group": np.int32,
        "base_margin": np.float64,
        "zero_missing": np.uint8,
        "categorical": np.uint8,
        "cat_start": np.int32,
        "cat_len": np.int32,
        "cat_bits": np.uint32,
        "linear_coef": np.float64,
    }
    assert set(forest.arrays()) == set(expected)
    for key, arr in forest.arrays().items():
        assert arr.dtype == expected[key], key
        assert not arr.flags.writeable, key
    assert forest.tree_offsets[0] == 0 and forest.tree_offsets[-1] == forest.num_nodes
    assert np.all(np.diff(forest.tree_offsets) > 0)
    np.testing.assert_array_equal(forest.tree_group, 0)
    assert not forest.has_categorical and not forest.has_zero_missing
    assert forest.cat_bits.size == 0


@ALL
def test_thresholds_leaves_and_defaults_match_xgboost(zoo, name):
    """Every split keeps XGBoost's float32 threshold and default direction, every leaf its
    value, tree by tree (compared as multisets: the loader re-numbers nodes)."""
    _, doc = _model(zoo, name)
    forest = zoo.forest(CASES[name], "json")
    for t, tree in enumerate(xgb_trees(doc)):
        lo, hi = forest.tree_offsets[t], forest.tree_offsets[t + 1]
        left = np.asarray(tree["left_children"])
        cond = np.asarray(tree["split_conditions"], dtype=np.float64).astype(np.float32)
        inner = left >= 0
        native_splits = sorted(
            zip(
                np.asarray(tree["split_indices"])[inner].tolist(),
                cond[inner].tolist(),
                np.asarray(tree["default_left"])[inner].tolist(),
                strict=True,
            )
        )
        ir_inner = forest.feature[lo:hi] >= 0
        ir_splits = sorted(
            zip(
                forest.feature[lo:hi][ir_inner].tolist(),
                forest.threshold[lo:hi][ir_inner].tolist(),
                forest.default_left[lo:hi][ir_inner].tolist(),
                strict=True,
            )
        )
        assert ir_splits == native_splits, f"tree {t}"
        native_leaves = sorted(cond[~inner].astype(np.float64).tolist())
        assert sorted(forest.value[lo:hi][~ir_inner].tolist()) == native_leaves, f"tree {t}"


@ALL
def test_link_and_base_margin(zoo, name):
    _, doc = _model(zoo, name)
    forest = zoo.forest(CASES[name], "json")
    objective = CASES[name].objective
    assert forest.objective == objective
    assert forest.link == LINKS[objective]
    score = base_score(doc)
    expected = {
        "identity": score,
        "sigmoid": math.log(score / (1.0 - score)) if forest.link == "sigmoid" else None,
        "exp": math.log(score) if forest.link == "exp" else None,
    }[forest.link]
    assert forest.base_margin.shape == (1,)
    assert forest.base_margin[0] == pytest.approx(expected, rel=1e-12)


# --- feature names -----------------------------------------------------------------------


@ALL
@pytest.mark.parametrize("fmt", FORMATS)
def test_feature_names(zoo, name, fmt):
    case = CASES[name]
    trained = zoo.trained(case)
    n_features = trained.X.shape[1]
    forest = zoo.forest(case, fmt)
    if case.train.names:
        expected = case.train.names
        assert expected == tuple(trained.model.feature_names)
    else:
        expected = tuple(f"f{i}" for i in range(n_features))
    assert forest.feature_names == expected
    assert forest.num_features == n_features
    kernel = zoo.kernel(case, fmt, "numba")
    assert kernel.feature_names == expected and kernel.num_features == n_features


def test_registry_has_models_with_and_without_names():
    assert {bool(case.train.names) for case in CASES.values()} == {True, False}


# --- layout ------------------------------------------------------------------------------


@ALL
def test_breadth_first_layout(zoo, name):
    forest = zoo.forest(CASES[name], "ubj")
    for t in range(forest.num_trees):
        lo, hi = int(forest.tree_offsets[t]), int(forest.tree_offsets[t + 1])
        feature, left, right = forest.feature[lo:hi], forest.left[lo:hi], forest.right[lo:hi]
        n = hi - lo
        inner = feature >= 0
        leaves = ~inner
        assert np.all(left[leaves] == -1) and np.all(right[leaves] == -1)
        assert np.all(forest.threshold[lo:hi][leaves] == 0)
        assert np.all(forest.value[lo:hi][inner] == 0)
        nodes = np.arange(n)
        assert np.all(left[inner] > nodes[inner]), f"tree {t}: a left child precedes its parent"
        assert np.all(right[inner] > nodes[inner]), f"tree {t}: a right child precedes its parent"
        assert np.all(right[inner] == left[inner] + 1), f"tree {t}: siblings not adjacent"
        assert np.all(left[inner] < n) and np.all(right[inner] < n)
        children = np.concatenate([left[inner], right[inner]])
        # every node but the root has exactly one parent: the tree is whole, nothing unreachable
        np.testing.assert_array_equal(np.sort(children), np.arange(1, n))
        # breadth-first: depth never decreases along the node array
        depth = np.zeros(n, dtype=np.int64)
        for node in np.flatnonzero(inner):
            depth[left[node]] = depth[right[node]] = depth[node] + 1
        assert np.all(np.diff(depth) >= 0), f"tree {t}: not breadth-first"


def _renumber(tree: dict, rng: np.random.Generator) -> dict:
    """The same tree with non-root node ids shuffled and one unreachable leaf appended."""
    n = len(tree["left_children"])
    perm = np.concatenate([[0], rng.permutation(np.arange(1, n))])  # old id -> new id
    inverse = np.argsort(perm)  # new id -> old id
    out = dict(tree)
    for key in ("split_indices", "split_conditions", "default_left", "split_type"):
        out[key] = [tree[key][old] for old in inverse] + [tree[key][0]]
    for key in ("left_children", "right_children"):
        out[key] = [int(perm[tree[key][old]]) if tree[key][old] >= 0 else -1 for old in inverse]
        out[key].append(-1)
    out["split_conditions"][-1] = 1234.5  # an unreachable leaf's value must not be scored
    out["tree_param"] = dict(tree["tree_param"], num_nodes=str(n + 1))
    for key in ("base_weights", "loss_changes", "sum_hessian", "parents"):
        out.pop(key, None)
    return out


@pytest.mark.parametrize("name", ["xgb-reg-gamma-lossguide", "xgb-binary-logistic-named"])
def test_children_before_parents_and_unreachable_nodes(zoo, name, tmp_path):
    """Native files may number children before parents and hold unreachable nodes; the
    loader's breadth-first re-layout gives the same forest either way."""
    _, doc = _model(zoo, name)
    rng = np.random.default_rng(0)
    model = doc["learner"]["gradient_booster"]["model"]
    model["trees"] = [_renumber(tree, rng) for tree in model["trees"]]
    path = tmp_path / "renumbered.json"
    path.write_text(json.dumps(doc))
    renumbered = kernels.load_model(path)
    original = zoo.forest(CASES[name], "json")
    for key, arr in original.arrays().items():
        np.testing.assert_array_equal(renumbered.arrays()[key], arr, err_msg=key)


# --- describe ----------------------------------------------------------------------------


@ALL
@pytest.mark.parametrize("fmt", FORMATS)
def test_describe(zoo, name, fmt):
    case = CASES[name]
    trained, doc = _model(zoo, name)
    forest = zoo.forest(case, fmt)
    summary = forest.describe()
    nodes = reachable_nodes(doc)
    n_trees, n_features = len(xgb_trees(doc)), trained.X.shape[1]
    assert summary == {
        "format": f"xgboost-{fmt}",
        "objective": case.objective,
        "link": forest.link,
        "outputs": 1,
        "classes": ["0", "1"] if case.objective.startswith("binary:logistic") else None,
        "trees": n_trees,
        "max_depth": max(tree_depths(doc)),
        "nodes": nodes,
        "leaves": (nodes + n_trees) // 2,  # a binary tree: leaves = inner + 1
        "categorical_splits": 0,
        "linear_term": False,
        "features": n_features,
        "feature_names": list(forest.feature_names),
        "feature_types": ["float"] * n_features,
        "ir_bytes": sum(a.nbytes for a in forest.arrays().values()),
        "sha256": hashlib.sha256(trained.files[fmt].read_bytes()).hexdigest(),
    }
    json.dumps(summary)  # JSON-ready, as `lakescore inspect` prints it


def test_tree_depths_count_lone_leaves(zoo):
    _, doc = _model(zoo, "xgb-reg-squarederror-stumps")
    depths = zoo.forest(CASES["xgb-reg-squarederror-stumps"], "json").tree_depths()
    np.testing.assert_array_equal(depths, tree_depths(doc))
    assert 0 in depths.tolist(), "the stumps model should hold lone-leaf trees"


# --- detect_format -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b'{"learner": {}}', "m.json", "xgboost-json"),
        (b'  \n\t{\n  "learner": 1}', "m.json", "xgboost-json"),
        (b"{}", "m.json", "xgboost-json"),
        (b"{ }", "m.bin", "xgboost-json"),
        (b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner{}}", "m.ubj", "xgboost-ubj"),
        (b"{i\x01a}", "model.json", "xgboost-ubj"),  # content wins over the extension
        (pickle.dumps({"a": 1}), "m.bin", "pickle"),
        (b"whatever", "m.pkl", "pickle"),
        (b"whatever", "m.joblib", "pickle"),
        (b"tree\nversion=v4\n", "m.txt", "lightgbm-text"),
        (b"tree\r\nversion=v4\r\n", "m.txt", "lightgbm-text"),
        (b"", "m.json", "unknown"),
        (b"   ", "m.json", "unknown"),
        (b"[1, 2]", "m.json", "unknown"),
        (b"\x00\x01\x02garbage", "m.ubj", "unknown"),
    ],
)
def test_detect_format(data, name, expected):
    assert detect_format(data, name) == expected


@pytest.mark.parametrize("fmt", FORMATS)
def test_detect_format_on_saved_models(zoo, fmt):
    for case in registry.family("xgboost"):
        path = zoo.trained(case).files[fmt]
        assert detect_format(path.read_bytes(), path.name) == f"xgboost-{fmt}"


# --- errors ------------------------------------------------------------------------------


def _model_bytes(zoo, fmt: str) -> bytes:
    return zoo.trained(CASES["xgb-binary-logistic"]).files[fmt].read_bytes()


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _json_doc(zoo) -> dict:
    return _model(zoo, "xgb-binary-logistic")[1]


def _without_tree_key(zoo) -> bytes:
    doc = _json_doc(zoo)
    del xgb_trees(doc)[0]["left_children"]
    return json.dumps(doc).encode()


def _bad_child(zoo) -> bytes:
    doc = _json_doc(zoo)
    xgb_trees(doc)[0]["left_children"][0] = 10_000
    return json.dumps(doc).encode()


def _bad_feature(zoo) -> bytes:
    doc = _json_doc(zoo)
    xgb_trees(doc)[0]["split_indices"][0] = 99
    return json.dumps(doc).encode()


def _bad_base_score(zoo) -> bytes:
    doc = _json_doc(zoo)
    doc["learner"]["learner_model_param"]["base_score"] = "[1.5E0]"
    return json.dumps(doc).encode()


FORMAT_ERRORS = [
    pytest.param(lambda m: b"", id="empty"),
    pytest.param(lambda m: b"\x00\x9f\x13garbage bytes\xff" * 20, id="garbage"),
    pytest.param(lambda m: _half(_model_bytes(m, "json")), id="truncated-json"),
    pytest.param(lambda m: _half(_model_bytes(m, "ubj")), id="truncated-ubj"),
    pytest.param(lambda m: _model_bytes(m, "ubj")[:-1], id="ubj-without-last-byte"),
    pytest.param(lambda m: b'{"hello": "world"}', id="json-not-a-model"),
    pytest.param(lambda m: b"{}", id="json-empty-object"),
    pytest.param(lambda m: b"[1, 2, 3]", id="json-array"),
    pytest.param(lambda m: b'{"learner": {}}', id="json-empty-learner"),
    pytest.param(lambda m: b'{"learner": 5}', id="json-learner-not-object"),
    pytest.param(_without_tree_key, id="tree-without-left_children"),
    pytest.param(_bad_child, id="child-out-of-range"),
    pytest.param(_bad_feature, id="feature-out-of-range"),
    pytest.param(_bad_base_score, id="base-score-outside-0-1"),
    pytest.param(lambda m: b"tree\nversion=v4\nnum_class=1\n", id="lightgbm-text"),
]


@pytest.mark.parametrize("make_bytes", FORMAT_ERRORS)
def test_unreadable_models_raise_model_format_error(zoo, tmp_path, make_bytes):
    path = tmp_path / "model.json"
    path.write_bytes(make_bytes(zoo))
    with pytest.raises(kernels.ModelFormatError) as excinfo:
        kernels.load_model(path)
    assert str(path) in str(excinfo.value)


@pytest.mark.parametrize("name", ["model.pkl", "model.joblib", "model.bin"])
def test_pickles_are_refused_without_trust(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(kernels.UntrustedModelError) as excinfo:
        kernels.load_model(path)
    message = str(excinfo.value)
    assert str(path) in message and "--trust-pickle" in message
    assert isinstance(excinfo.value, ValueError)


def test_missing_file(tmp_path):
    path = tmp_path / "nope" / "model.json"
    with pytest.raises(kernels.ModelFormatError, match="not found") as excinfo:
        kernels.load_model(path)
    assert str(path) in str(excinfo.value)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(kernels.ModelFormatError) as excinfo:
        kernels.load_model(tmp_path)
    assert str(tmp_path) in str(excinfo.value)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", sorted(UNSUPPORTED))
def test_unsupported_models(tmp_path, kind, fmt):
    path = train_unsupported(kind, tmp_path, fmt)
    with pytest.raises(kernels.UnsupportedModelError) as excinfo:
        kernels.load_model(path)
    message = str(excinfo.value)
    assert str(path) in message
    assert UNSUPPORTED[kind] in message


def test_errors_are_value_errors():
    for error in (kernels.ModelFormatError, kernels.UnsupportedModelError):
        assert issubclass(error, kernels.KernelError)
        assert issubclass(error, ValueError)


def test_load_model_accepts_str_paths(zoo):
    case = CASES["xgb-binary-logistic"]
    forest = kernels.load_model(str(zoo.trained(case).files["json"]))
    assert forest.fingerprint() == zoo.forest(case, "json").fingerprint()


def test_extension_is_only_a_hint(zoo, tmp_path):
    data = _model_bytes(zoo, "ubj")
    path = tmp_path / "model.json"  # UBJ bytes behind a .json name
    path.write_bytes(data)
    assert kernels.load_model(path).source_format == "xgboost-ubj"


# --- the UBJSON decoder on hand-made bytes -------------------------------------------------


def key(text: str) -> bytes:
    """An object key (or string body): int8 length marker, then UTF-8 bytes."""
    raw = text.encode()
    return b"i" + bytes([len(raw)]) + raw


def string(text: str) -> bytes:
    return b"S" + key(text)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"i\x05", 5),
        (b"i\xff", -1),
        (b"U\xff", 255),
        (b"I\x01\x02", 258),
        (b"I\xff\xfe", -2),
        (b"l\x00\x01\x00\x00", 65536),
        (b"L" + (2**40 + 3).to_bytes(8, "big"), 2**40 + 3),
        (b"d" + struct.pack(">f", 1.5), 1.5),
        (b"D" + struct.pack(">d", -2.25), -2.25),
        (b"T", True),
        (b"F", False),
        (b"Z", None),
        (b"Cx", "x"),
        (string("abc"), "abc"),
        (b"S" + b"U\x02" + "é".encode(), "é"),
        (b"SL" + (3).to_bytes(8, "big") + b"xyz", "xyz"),
        (b"[]", []),
        (b"{}", {}),
    ],
)
def test_ubjson_scalars_and_empty_containers(data, expected):
    assert _ubjson.loads(data) == expected


@pytest.mark.parametrize(
    ("marker", "dtype", "values"),
    [
        (b"d", np.float32, [1.0, -0.5, np.inf, 3.4e38]),
        (b"D", np.float64, [1e300, -2.5, 0.0]),
        (b"i", np.int8, [-128, 0, 127]),
        (b"U", np.uint8, [0, 1, 255]),
        (b"I", np.int16, [-32768, 258]),
        (b"l", np.int32, [-7, 2**31 - 1]),
        (b"L", np.int64, [-(2**62), 2**40 + 3]),
    ],
)
def test_ubjson_typed_arrays(marker, dtype, values):
    expected = np.array(values, dtype=dtype)
    big_endian = expected.astype(expected.dtype.newbyteorder(">")).tobytes()
    data = b"[$" + marker + b"#i" + bytes([len(values)]) + big_endian
    got = _ubjson.loads(data)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, expected)


def test_ubjson_typed_array_keeps_nan_and_large_counts():
    values = np.array([np.nan, 1.0, -np.inf] * 100, dtype=">f4")
    data = b"[$d#I" + struct.pack(">h", values.shape[0]) + values.tobytes()
    got = _ubjson.loads(data)
    assert got.shape == (300,)
    np.testing.assert_array_equal(got, values.astype(np.float32))


def test_ubjson_typed_empty_array():
    got = _ubjson.loads(b"[$d#i\x00")
    assert isinstance(got, np.ndarray) and got.shape == (0,) and got.dtype == np.float32


def test_ubjson_typed_array_of_strings():
    assert _ubjson.loads(b"[$S#i\x02" + key("ab") + key("c")) == ["ab", "c"]


def test_ubjson_counted_and_open_arrays():
    assert _ubjson.loads(b"[#i\x03i\x01" + string("a") + b"T") == [1, "a", True]
    assert _ubjson.loads(b"[i\x01[i\x02]" + string("b") + b"Z]") == [1, [2], "b", None]


def test_ubjson_nested_objects():
    data = (
        b"{" + key("a") + b"[i\x01i\x02]"
        + key("b") + b"{" + key("c") + b"T" + key("d") + b"{}}"
        + key("e") + b"[$U#i\x02\x07\x08"
        + key("f") + string("g")
        + b"}"
    )  # fmt: skip
    got = _ubjson.loads(data)
    assert list(got) == ["a", "b", "e", "f"]
    assert got["a"] == [1, 2]
    assert got["b"] == {"c": True, "d": {}}
    np.testing.assert_array_equal(got["e"], np.array([7, 8], dtype=np.uint8))
    assert got["f"] == "g"


def test_ubjson_counted_and_typed_objects():
    assert _ubjson.loads(b"{#i\x02" + key("a") + b"i\x01" + key("b") + b"Z") == {
        "a": 1,
        "b": None,
    }
    assert _ubjson.loads(b"{$U#i\x02" + key("a") + b"\x05" + key("b") + b"\x06") == {
        "a": 5,
        "b": 6,
    }


def test_ubjson_xgboost_style_keys():
    """XGBoost writes every length as an int64 ("L") marker."""
    length = (7).to_bytes(8, "big")
    assert _ubjson.loads(b"{L" + length + b"learner{}}") == {"learner": {}}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"NNi\x05", 5),
        (b"[Ni\x01NNi\x02N]", [1, 2]),
        (b"{N" + key("a") + b"Ni\x01}", {"a": 1}),
        (b"{" + key("a") + b"[Ni\x01N]}", {"a": [1]}),
        (b"{" + key("a") + b"i\x01N}", {"a": 1}),
        (b"{" + key("a") + b"i\x01NN}", {"a": 1}),
    ],
)
def test_ubjson_no_op_markers_are_skipped(data, expected):
    assert _ubjson.loads(data) == expected


VALID_DOCUMENT = (
    b"{" + key("name") + string("tree")
    + key("ids") + b"[$l#i\x03" + np.array([1, -2, 3], dtype=">i4").tobytes()
    + key("thresholds") + b"[$d#i\x02" + np.array([0.5, -1.25], dtype=">f4").tobytes()
    + key("nested") + b"[{" + key("x") + b"D" + struct.pack(">d", 2.0) + b"}T]"
    + b"}"
)  # fmt: skip


def test_ubjson_valid_document():
    got = _ubjson.loads(VALID_DOCUMENT)
    assert got["name"] == "tree"
    np.testing.assert_array_equal(got["ids"], [1, -2, 3])
    np.testing.assert_array_equal(got["thresholds"], np.array([0.5, -1.25], dtype=np.float32))
    assert got["nested"] == [{"x": 2.0}, True]


def test_ubjson_every_truncation_raises():
    for end in range(len(VALID_DOCUMENT)):
        with pytest.raises(UBJSONError):
            _ubjson.loads(VALID_DOCUMENT[:end])


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"X", id="unknown-marker"),
        pytest.param(b"H" + key("1.5"), id="high-precision"),
        pytest.param(b"[$i]", id="typed-without-count"),
        pytest.param(b"Si\xff", id="negative-length"),
        pytest.param(b"SD" + struct.pack(">d", 2.0) + b"ab", id="float-length"),
        pytest.param(b"[$d#i\x04" + b"\x00" * 8, id="typed-count-beyond-data"),
        pytest.param(b"{i\x01a", id="key-without-value"),
    ],
)
def test_ubjson_invalid_input_raises(data):
    with pytest.raises(UBJSONError):
        _ubjson.loads(data)


def test_ubjson_error_is_value_error():
    assert issubclass(UBJSONError, ValueError)


def test_ubjson_decodes_xgboost_models_like_json(zoo):
    """Decoding XGBoost's UBJ gives XGBoost's JSON document (floats compared as float32)."""
    for case in registry.family("xgboost"):
        booster = zoo.trained(case).model
        booster = booster if hasattr(booster, "save_raw") else booster.get_booster()
        from_ubj = _ubjson.loads(bytes(booster.save_raw("ubj")))
        _assert_same_document(from_ubj, model_json(booster), case.name)


def _assert_same_document(got, expected, path: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected), path
        for k, value in expected.items():
            _assert_same_document(got[k], value, f"{path}/{k}")
    elif isinstance(got, np.ndarray):
        np.testing.assert_array_equal(got, np.asarray(expected, dtype=got.dtype), err_msg=path)
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), path
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            _assert_same_document(a, b, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert np.float32(got) == np.float32(expected), path
    else:
        assert got == expected, path


def test_model_objects_in_memory(zoo):
    """``load_model`` takes a fitted Booster as it takes its file: same forest."""
    trained = zoo.trained(CASES["xgb-binary-logistic"])
    from_object = kernels.load_model(trained.model)
    from_file = kernels.load_model(trained.files["json"], cache=False)
    assert from_object.fingerprint() == from_file.fingerprint()
    assert from_object.source_format == "xgboost-json" and from_object.sha256 == ""
    with pytest.raises(kernels.ModelFormatError, match="not a scikit-learn model"):
        kernels.load_model({"not": "a model"})


# --- intercepts ----------------------------------------------------------------------------


def test_registry_has_estimated_and_given_intercepts(zoo):
    """XGBoost estimates base_score unless it is given (boost_from_average): the registry
    holds both, and the agreement suite scores both."""
    estimated = base_score(_model(zoo, "xgb-reg-squarederror")[1])
    given = base_score(_model(zoo, "xgb-reg-squarederror-base-score")[1])
    assert estimated not in (0.0, 0.5) and given == pytest.approx(0.3)


@pytest.mark.parametrize("name", ["xgb-multi-softprob", "xgb-multi-softmax"])
def test_multiclass_trees_and_intercepts_per_class(zoo, name):
    """One output per class, each tree in its class's column, and XGBoost's vector
    intercept (one estimated margin per class) as the base margins."""
    case = registry.BY_NAME[name]
    doc = model_json(zoo.trained(case).model)
    forest = zoo.forest(case, "ubj")
    assert forest.num_outputs == 3
    assert forest.link == ("softmax" if name.endswith("softprob") else "argmax")
    groups = doc["learner"]["gradient_booster"]["model"]["tree_info"]
    np.testing.assert_array_equal(forest.tree_group, np.asarray(groups, np.int32))
    raw = doc["learner"]["learner_model_param"]["base_score"].strip("[]").split(",")
    intercepts = [float(v) for v in raw]
    assert len(intercepts) == 3 and len(set(intercepts)) > 1  # a vector, not one value
    np.testing.assert_allclose(forest.base_margin, intercepts, rtol=1e-12)


def test_registry_exercises_both_default_directions(zoo):
    """Every plain XGBoost entry holds splits that send NaN left and ones that send it
    right, so the agreement suite's NaN rows test both."""
    for name, case in CASES.items():
        forest = zoo.forest(case, "json")
        inner = forest.feature >= 0
        assert set(np.unique(forest.default_left[inner])) == {0, 1}, name
