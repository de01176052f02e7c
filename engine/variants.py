"""Champion/challenger variants: which model scores which customer, in one pass.

A job's ``[variants]`` table names models with weights and a salt. Each row's variant is a
pure function of the salt and its id (:func:`assignment_units`), so it is the same in
every run, on every machine and executor, whatever the partitioning or batch size:

    u = (first 8 bytes of blake2b(salt || 0x1f || id, digest_size=8) as big-endian
         uint64 >> 11) * 2**-53                      # uniform in [0, 1), 53 bits
    variant = the first k with u < (w_1 + ... + w_k) / (w_1 + ... + w_n)

``id`` is the id's decimal text (integer ids), its UTF-8 bytes (strings) or its bytes
(binary), so ``123`` and ``"123"`` are the same customer. Variants are taken in the order
the job file lists them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import kernels
from engine.errors import BadInputError
from engine.quality.variant_drift import RegisteredReference
from engine.registry import ResolvedModel, registry_location, resolve_model, resolve_model_value
from engine.registry_weights import check_campaign, read_registry_weights
from engine.storage import Storage

VARIANT_COLUMN = "variant"
MODEL_VERSION_COLUMN = "model_version"
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_SEPARATOR = b"\x1f"


@dataclass(frozen=True)
class Variant:
    name: str
    model: str
    weight: float


@dataclass(frozen=True)
class VariantsSpec:
    """The ``[variants]`` table of a job file."""

    salt: str
    variants: tuple[Variant, ...]
    shadow: bool = False
    #: weights from the registry's ``_campaigns/<campaign>.json`` when it exists
    #: (:mod:`engine.registry_weights`); the listed weights until then
    campaign: str | None = None

    @property
    def cumulative(self) -> tuple[float, ...]:
        weights = np.array([v.weight for v in self.variants], dtype=np.float64)
        cum = np.cumsum(weights) / weights.sum()
        cum[-1] = 1.0  # u < 1 always lands on a variant, whatever the rounding
        return tuple(float(c) for c in cum)


def parse_variants(doc: Any, *, base_dir: Path, origin: str) -> VariantsSpec:
    """``[variants]`` -> :class:`VariantsSpec`; every error names the key at fault."""
    where = f"{origin}: [variants]"
    if not isinstance(doc, dict):
        raise BadInputError(f"{where} must be a table")
    unknown = sorted(set(doc) - {"salt", "shadow", "models", "campaign"})
    if unknown:
        raise BadInputError(f"{where}: unknown key {unknown[0]!r}")
    salt, shadow, models = doc.get("salt"), doc.get("shadow", False), doc.get("models")
    if not isinstance(salt, str) or not salt:
        raise BadInputError(f"{where}: salt must be a non-empty string")
    if not isinstance(shadow, bool):
        raise BadInputError(f"{where}: shadow must be true or false")
    if not isinstance(models, dict) or not models:
        raise BadInputError(f"{where}: [variants.models] must name at least one variant")
    variants = []
    for name, entry in models.items():
        at = f"{origin}: [variants.models] {name}"
        if not _VARIANT_NAME.match(name):
            raise BadInputError(f"{at}: variant names use letters, digits, '_' and '-'")
        if not isinstance(entry, dict) or set(entry) - {"model", "weight"}:
            raise BadInputError(f'{at}: expected {{ model = "...", weight = W }}')
        model, weight = entry.get("model"), entry.get("weight")
        if not isinstance(model, str) or not model:
            raise BadInputError(f"{at}: model must be a path or NAME@VERSION/NAME@ALIAS")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise BadInputError(f"{at}: weight must be a positive number, got {weight!r}")
        variants.append(Variant(name, resolve_model_value(model, base_dir), float(weight)))
    campaign = doc.get("campaign")
    if campaign is not None:
        check_campaign(campaign, where)
    return VariantsSpec(salt=salt, variants=tuple(variants), shadow=shadow, campaign=campaign)


def with_registry_weights(spec: VariantsSpec, registry: str | None) -> tuple[VariantsSpec, str]:
    """``spec`` with its campaign's weights from the registry, when it names a campaign
    that an evaluation wrote weights for; and where the weights came from."""
    if spec.campaign is None:
        return spec, "job"
    root = registry_location(registry)
    if root is None:
        raise BadInputError(
            f"variants: campaign {spec.campaign!r} takes its weights from the registry, "
            "but no registry is set (--registry, $LAKESCORE_REGISTRY or registry =)"
        )
    doc = read_registry_weights(root, spec.campaign)
    if doc is None:  # no evaluation yet: the job file's weights
        return spec, "job"
    weights = doc["weights"]
    names = [v.name for v in spec.variants]
    if sorted(weights) != sorted(names):
        raise BadInputError(
            f"registry {root}: campaign {spec.campaign} has weights for "
            f"{', '.join(sorted(weights))}, the job lists {', '.join(names)}"
        )
    variants = tuple(dataclasses.replace(v, weight=weights[v.name]) for v in spec.variants)
    return dataclasses.replace(spec, variants=variants), f"registry:{spec.campaign}"


# ---- assignment
def _digests(ids: pa.Array, column: str, prefix: bytes) -> np.ndarray:
    """``blake2b(prefix + id bytes, digest_size=8)`` of every id, as big-endian uint64."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    if ids.null_count:
        raise BadInputError(f"id column {column}: {ids.null_count} null id(s); variants need ids")
    from engine._blake2b import digest_bytes, digest_integers  # Numba: variant runs only

    t = ids.type
    head = np.frombuffer(prefix, dtype=np.uint8)
    if pa.types.is_integer(t) and t != pa.uint64():
        return digest_integers(head, ids.to_numpy().astype(np.int64, copy=False))
    if pa.types.is_string_view(t):
        ids, t = ids.cast(pa.string()), pa.string()
    if pa.types.is_fixed_size_binary(t):
        ids, t = ids.cast(pa.binary()), pa.binary()
    kinds = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary)
    if any(k(t) for k in kinds) or pa.types.is_large_binary(t):
        large = pa.types.is_large_string(t) or pa.types.is_large_binary(t)
        _, offsets, data = ids.buffers()
        offsets = np.frombuffer(offsets, dtype=np.int64 if large else np.int32)
        offsets = offsets[ids.offset : ids.offset + len(ids) + 1].astype(np.int64)
        data = np.frombuffer(data, dtype=np.uint8) if data is not None else head[:0]
        return digest_bytes(head, offsets, data)
    if t == pa.uint64():  # above 2**63 - 1 the compiled int64 path would not fit
        blake = hashlib.blake2b
        texts = (str(i).encode() for i in ids.to_pylist())
        digests = b"".join(blake(prefix + i, digest_size=8).digest() for i in texts)
        return np.frombuffer(digests, dtype=">u8").astype(np.uint64)
    raise BadInputError(f"id column {column}: type {t} cannot assign variants (use int or string)")


def assignment_units(ids: pa.Array, salt: str, column: str = "id") -> np.ndarray:
    """Each id's uniform number in [0, 1) (float64), from blake2b of salt and id."""
    bits = _digests(ids, column, salt.encode() + _SEPARATOR) >> np.uint64(11)
    return bits.astype(np.float64) * 2.0**-53


def assign(ids: pa.Array, salt: str, cumulative: tuple[float, ...], column: str = "id"):
    """Variant index (int32) of each id."""
    units = assignment_units(ids, salt, column)
    return np.searchsorted(np.asarray(cumulative), units, side="right").astype(np.int32)


# ---- planning (driver)
@dataclass(frozen=True)
class VariantConfig:
    """What a worker needs to score variants; small and picklable."""

    names: tuple[str, ...]
    model_paths: tuple[str, ...]
    sha256s: tuple[str, ...]
    versions: tuple[int | None, ...]
    cumulative: tuple[float, ...]
    salt: str
    shadow: bool
    id_column: str
    #: per variant, the columns of the first variant's feature matrix in its own order
    feature_orders: tuple[tuple[int, ...], ...]


class VariantPlan:
    """Every variant's model, resolved, verified and loaded; checked to take one schema."""

    def __init__(
        self,
        spec: VariantsSpec,
        registry: str | None,
        id_column: str | None,
        trust_pickle: bool,
        *,
        storage: Storage | None = None,
    ) -> None:
        if id_column is None:
            raise BadInputError("variants: an id column is required (id_column / --id-column)")
        self.spec, self.weights_source = with_registry_weights(spec, registry)
        spec = self.spec
        self.id_column = id_column
        self.resolved: list[ResolvedModel] = []
        self.forests: list[kernels.Forest] = []
        for v in spec.variants:
            resolved = resolve_model(v.model, registry, storage)  # s3:// models: downloaded
            forest = resolved.load(trust_pickle=trust_pickle)
            if forest.num_outputs != 1:
                raise BadInputError(f"variants: {v.name} ({v.model}) is multiclass; not supported")
            self.resolved.append(resolved)
            self.forests.append(forest)
        first = self.forests[0].feature_names
        for v, forest in zip(spec.variants[1:], self.forests[1:], strict=True):
            if set(forest.feature_names) != set(first) or len(forest.feature_names) != len(first):
                extra = sorted(set(forest.feature_names) ^ set(first))[:5]
                raise BadInputError(
                    f"variants: {v.name} and {spec.variants[0].name} take different features "
                    f"(differ in {', '.join(extra) or 'duplicates'}); all variants must take "
                    "the same features"
                )

    @property
    def fingerprint(self) -> str:
        """What makes a variant job the same job (resume): models, weights, salt, shadow."""
        doc = [self.spec.salt, self.spec.shadow]
        pairs = zip(self.spec.variants, self.forests, strict=True)
        doc += [[v.name, v.weight, f.sha256] for v, f in pairs]
        return hashlib.sha256(json.dumps(doc).encode()).hexdigest()

    def compile(self, backend: str, n_threads: int | None = None) -> list[kernels.Kernel]:
        try:
            return [
                kernels.compile_model(f, backend=backend, n_threads=n_threads) for f in self.forests
            ]
        except kernels.KernelError as exc:
            raise BadInputError(str(exc)) from None

    def registered_references(self) -> dict[str, RegisteredReference | None]:
        """Each variant's reference profile registered with its model version, if any."""
        out: dict[str, RegisteredReference | None] = {}
        for v, r in zip(self.spec.variants, self.resolved, strict=True):
            registered = None
            if r.reference is not None:
                registered = RegisteredReference(
                    f"{r.name}@{r.version}", r.reference, r.reference_sha256
                )
            out[v.name] = registered
        return out

    def config(self) -> VariantConfig:
        first = self.forests[0].feature_names
        return VariantConfig(
            names=tuple(v.name for v in self.spec.variants),
            model_paths=tuple(r.path for r in self.resolved),
            sha256s=tuple(f.sha256 for f in self.forests),
            versions=tuple(r.version for r in self.resolved),
            cumulative=self.spec.cumulative,
            salt=self.spec.salt,
            shadow=self.spec.shadow,
            id_column=self.id_column,
            feature_orders=tuple(
                tuple(first.index(n) for n in f.feature_names) for f in self.forests
            ),
        )

    def record(self) -> dict[str, Any]:
        """The job document's ``variants`` entry (the run record adds statistics)."""
        cum = (0.0, *self.spec.cumulative)
        return {
            "salt": self.spec.salt,
            "shadow": self.spec.shadow,
            "order": [v.name for v in self.spec.variants],  # JSON records sort their keys
            "campaign": self.spec.campaign,
            "weights_source": self.weights_source,
            "models": {
                v.name: {
                    "weight": round(cum[k + 1] - cum[k], 12),
                    **r.record(f.sha256),
                    "model": v.model,
                }
                for k, (v, r, f) in enumerate(
                    zip(self.spec.variants, self.resolved, self.forests, strict=True)
                )
            },
        }


# ---- scoring (worker)
class VariantScorer:
    """Scores each row with its variant's kernel (or, in shadow mode, with every kernel)."""

    def __init__(self, config: VariantConfig, variant_kernels: list[kernels.Kernel]) -> None:
        self.config = config
        self.kernels = variant_kernels
        self._names = pa.array(config.names, pa.string())
        self._versions = pa.array(config.versions, pa.int32())

    @classmethod
    def load(cls, config: VariantConfig, backend: str, trust_pickle: bool) -> VariantScorer:
        from engine.task import load_kernel  # the worker's loader, sha256 check included

        loaded = [
            load_kernel(path, sha, backend, trust_pickle=trust_pickle)
            for path, sha in zip(config.model_paths, config.sha256s, strict=True)
        ]
        return cls(config, loaded)

    def fields(self) -> list[pa.Field]:
        return variant_fields(self.config)

    def score(self, batch: pa.RecordBatch, X: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
        """The sink's score columns for ``batch``, and each row's variant index (int32)
        for the per-variant statistics."""
        cfg = self.config
        which = assign(batch.column(cfg.id_column), cfg.salt, cfg.cumulative, cfg.id_column)
        score = np.empty(batch.num_rows, dtype=np.float32)
        shadow: dict[str, np.ndarray] = {}
        for k, kernel in enumerate(self.kernels):
            Xk = self._features(X, k)
            if cfg.shadow:
                shadow[f"score_{cfg.names[k]}"] = all_rows = kernel.predict(Xk)
                score[which == k] = all_rows[which == k]
            elif (rows := np.flatnonzero(which == k)).size:
                score[rows] = kernel.predict(np.take(Xk, rows, axis=0))
        idx = pa.array(which, pa.int32())
        columns: dict[str, Any] = {
            "score": score,
            **shadow,
            VARIANT_COLUMN: pa.DictionaryArray.from_arrays(idx, self._names),
            MODEL_VERSION_COLUMN: pc.take(self._versions, idx),
        }
        return columns, which

    def _features(self, X: np.ndarray, k: int) -> np.ndarray:
        order = self.config.feature_orders[k]
        if order == tuple(range(len(order))):
            return X
        return X[:, list(order)]


def variant_fields(config: VariantConfig) -> list[pa.Field]:
    """The sink's score columns of a variant run, in the order they are written."""
    shadow = [pa.field(f"score_{n}", pa.float32()) for n in config.names]
    return [
        pa.field("score", pa.float32()),
        *(shadow if config.shadow else []),
        pa.field(VARIANT_COLUMN, pa.dictionary(pa.int32(), pa.string())),
        pa.field(MODEL_VERSION_COLUMN, pa.int32()),
    ]
