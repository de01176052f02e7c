"""Forest (IR) -> ``treelite.Model``, through treelite's model builder.

The model is built from the IR, not from the original file, so every format a loader
reads reaches TL2cgen with the IR's one split rule already settled:

* ``go left iff x < threshold``: the float32 threshold is widened to float64 (exact), and
  the generated C compares the float64-widened input against it, which orders exactly as
  the float32 compare does;
* NaN goes ``default_left`` (TL2cgen treats NaN in the input matrix as missing);
* leaf values stay float64 and are summed in float64, as the Numba kernel sums them.

Everything after the summed trees stays in Python, shared with every backend
(:class:`kernels.kernel.Kernel`): the model has no base score, no postprocessor and no
averaging, so the compiled library returns the raw per-output sums. The base margin is
added by the launcher; link, link scale and the linear term by ``Kernel.predict``.

What TL2cgen cannot express exactly is refused with :class:`UnsupportedModelError`.
"""

from __future__ import annotations

import numpy as np

from kernels.errors import UnsupportedModelError
from kernels.ir import Forest


def check_expressible(forest: Forest) -> None:
    """Raise :class:`UnsupportedModelError` naming what TL2cgen cannot score exactly."""
    if forest.has_categorical:
        n = int((forest.categorical != 0).sum())
        raise UnsupportedModelError(
            f"backend 'tl2cgen' does not score categorical splits ({n} in this model): "
            "treelite's category rules differ from the native libraries' for negative, "
            "fractional and out-of-range values; use --backend numba"
        )
    if forest.has_zero_missing:
        raise UnsupportedModelError(
            "backend 'tl2cgen' does not score LightGBM's zero_as_missing band (values near "
            "zero treated as missing); use --backend numba"
        )


def build_treelite_model(forest: Forest):  # -> treelite.Model (imported lazily)
    """The forest's trees as a treelite model returning raw per-output sums.

    Multi-output forests become ``num_target = n_outputs`` regressors, tree ``t`` adding
    to target ``tree_group[t]``: no class semantics, so treelite applies nothing of its
    own.
    """
    check_expressible(forest)
    if forest.num_trees == 0:
        raise ValueError("a forest without trees has nothing to compile")
    from treelite.model_builder import (
        Metadata,
        ModelBuilder,
        PostProcessorFunc,
        TreeAnnotation,
    )

    n_out = forest.num_outputs
    builder = ModelBuilder(
        threshold_type="float64",
        leaf_output_type="float64",
        metadata=Metadata(
            num_feature=forest.num_features,
            task_type="kRegressor",
            average_tree_output=False,
            num_target=n_out,
            num_class=[1] * n_out,
            leaf_vector_shape=(1, 1),
        ),
        tree_annotation=TreeAnnotation(
            num_tree=forest.num_trees,
            target_id=[int(g) for g in forest.tree_group],
            class_id=[0] * forest.num_trees,
        ),
        postprocessor=PostProcessorFunc(name="identity"),
        base_scores=[0.0] * n_out,
    )
    # Python lists: element access on them is several times faster than on numpy arrays.
    feature = forest.feature.tolist()
    threshold = _c_thresholds(forest.threshold).tolist()
    opname = np.where(np.isposinf(forest.threshold), "<=", "<").tolist()
    left = forest.left.tolist()
    right = forest.right.tolist()
    default_left = (forest.default_left != 0).tolist()
    value = forest.value.tolist()
    offsets = forest.tree_offsets.tolist()
    for t in range(forest.num_trees):
        root = offsets[t]
        builder.start_tree()
        for i in range(root, offsets[t + 1]):
            builder.start_node(i - root)
            if feature[i] < 0:
                builder.leaf(value[i])
            else:
                builder.numerical_test(
                    feature[i],
                    threshold[i],
                    default_left=default_left[i],
                    opname=opname[i],
                    left_child_key=left[i],
                    right_child_key=right[i],
                )
            builder.end_node()
        builder.end_tree()
    return builder.commit()


def _c_thresholds(threshold: np.ndarray) -> np.ndarray:
    """float64 thresholds for TL2cgen, which folds an infinite threshold into a constant
    result: ``x < +inf`` into true, wrong for ``x = +inf``. Those nodes become
    ``x <= float32 max`` (their opname is set by the caller), the same for every float32
    ``x``. ``x < -inf`` folds to false, which is right for every ``x``.
    """
    t = threshold.astype(np.float64)
    return np.where(np.isposinf(t), float(np.finfo(np.float32).max), t)
