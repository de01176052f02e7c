"""Forest -> the array layouts the tiled CPU kernels traverse.

Both layouts make a split step branch-free: ``go_right = x >= threshold`` on a row tile
where missing values were already resolved. The tile holds every used feature twice: as
it is, read by nodes whose missing values go left (an ordered ``NaN >= t`` is false, so
NaN goes left, whatever ``t``, ``-inf`` included), and with NaN replaced by ``+inf``,
read by nodes whose missing values go right (``+inf >= t`` for every ``t``). A node's
feature offset picks the copy, so the direction of a missing value costs nothing per
step. This holds for every numeric split; categorical splits and LightGBM's zero band
use the reference kernel.

* **perfect**: every tree padded to a complete binary tree of the forest's depth (a leaf
  above the last level is copied into all its descendants). Children of position ``p``
  are ``2p + 1`` and ``2p + 2``, so no child index is stored, and the top levels, where
  all rows of a tile share few nodes, are evaluated with vector compares.
* **sparse**: the breadth-first node arrays as loaded, for deep trees where padding would
  not fit in cache. Children are adjacent (``right == left + 1``), and a leaf points at
  itself with a threshold no value reaches, so every row takes the same number of steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernels.ir import Forest

#: Rows per tile: 2 x 50 features x 64 rows x 4 bytes stays well inside a 32 KiB L1.
TILE_ROWS = 64
#: Tiles a deep (sparse-layout) tree walks before the next tree: 16 x 26 KiB of tiles for
#: 50 features stay in L2 while the tree's upper levels stay in L1.
SPARSE_CHUNK_TILES = 16
#: Deepest forest padded to complete trees (2 x 1023 nodes per tree still fit in L2).
MAX_PERFECT_DEPTH = 10


@dataclass(frozen=True)
class TileColumns:
    """The input columns a tile holds (features the forest splits on), in tile order."""

    columns: np.ndarray  # int64: input column of each tile feature

    @property
    def width(self) -> int:
        return int(self.columns.shape[0])

    def offsets(self, feature: np.ndarray, default_left: np.ndarray) -> np.ndarray:
        """Tile row offset (premultiplied by the tile height) of each split's feature copy."""
        position = np.searchsorted(self.columns, feature)
        copy = np.where(default_left != 0, 0, self.width)
        return ((position + copy) * TILE_ROWS).astype(np.uint32)


@dataclass(frozen=True)
class PerfectLayout:
    depth: int
    feature_offset: np.ndarray  # uint32 (n_trees, 2^depth - 1)
    threshold: np.ndarray  # float32 (n_trees, 2^depth - 1)
    leaf_value: np.ndarray  # float64 (n_trees, 2^depth)
    tiles: TileColumns


@dataclass(frozen=True)
class SparseLayout:
    left: np.ndarray  # uint32, absolute index of the left child; a leaf's own index
    feature_offset: np.ndarray  # uint32; a leaf reads the sentinel row of -inf
    threshold: np.ndarray  # float32; +inf for a leaf so it never moves
    value: np.ndarray  # float64
    roots: np.ndarray  # uint32
    depths: np.ndarray  # int64
    tiles: TileColumns


def tile_columns(forest: Forest) -> TileColumns:
    used = np.unique(forest.feature[forest.feature >= 0]).astype(np.int64)
    return TileColumns(used)


def perfect_layout(forest: Forest, depth: int) -> PerfectLayout:
    n_trees = forest.num_trees
    n_inner = (1 << depth) - 1
    roots = forest.tree_offsets[:-1].astype(np.int64)
    # node[t, p]: the forest node at complete-tree position p (a leaf repeats downwards)
    node = np.empty((n_trees, 2 * n_inner + 1), dtype=np.int64)
    node[:, 0] = roots
    root_of = roots[:, None]
    for level in range(depth):
        lo, hi = (1 << level) - 1, (1 << (level + 1)) - 1
        parents = node[:, lo:hi]
        inner = forest.feature[parents] >= 0
        left = np.where(inner, forest.left[parents] + root_of, parents)
        right = np.where(inner, forest.right[parents] + root_of, parents)
        node[:, 2 * lo + 1 : 2 * hi + 1 : 2] = left
        node[:, 2 * lo + 2 : 2 * hi + 2 : 2] = right
    inner_nodes = node[:, :n_inner]
    is_split = forest.feature[inner_nodes] >= 0
    tiles = tile_columns(forest)
    offsets = tiles.offsets(
        np.where(is_split, forest.feature[inner_nodes], tiles.columns[0] if tiles.width else 0),
        forest.default_left[inner_nodes],
    )
    leaves = node[:, n_inner:]
    if np.any(forest.feature[leaves] >= 0):
        raise ValueError("perfect layout: depth is smaller than the forest's depth")
    return PerfectLayout(
        depth=depth,
        feature_offset=np.ascontiguousarray(np.where(is_split, offsets, 0).astype(np.uint32)),
        # a padded position copies a leaf into both children, so its compare is irrelevant
        threshold=np.ascontiguousarray(
            np.where(is_split, forest.threshold[inner_nodes], 0).astype(np.float32)
        ),
        leaf_value=np.ascontiguousarray(forest.value[leaves].astype(np.float64)),
        tiles=tiles,
    )


def sparse_layout(forest: Forest) -> SparseLayout:
    n = forest.num_nodes
    tiles = tile_columns(forest)
    leaf = forest.feature < 0
    roots = forest.tree_offsets[:-1].astype(np.int64)
    root_of_node = np.repeat(roots, np.diff(forest.tree_offsets))
    if np.any(forest.right[~leaf] != forest.left[~leaf] + 1):
        raise ValueError("sparse layout needs adjacent children (breadth-first forest)")
    sentinel = np.uint32(2 * tiles.width * TILE_ROWS)
    offsets = tiles.offsets(
        np.where(leaf, tiles.columns[0] if tiles.width else 0, forest.feature), forest.default_left
    )
    return SparseLayout(
        left=np.where(leaf, np.arange(n), forest.left + root_of_node).astype(np.uint32),
        feature_offset=np.where(leaf, sentinel, offsets).astype(np.uint32),
        threshold=np.where(leaf, np.float32(np.inf), forest.threshold).astype(np.float32),
        value=forest.value.astype(np.float64),
        roots=roots.astype(np.uint32),
        depths=forest.tree_depths().astype(np.int64),
        tiles=tiles,
    )
