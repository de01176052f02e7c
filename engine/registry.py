"""The model registry: versioned model files in the lake, named ``NAME@VERSION`` or ``NAME@ALIAS``.

Layout under the registry root (a directory or an ``s3://`` prefix; :mod:`engine._lakefs`)::

    <name>/blobs/<sha256>/<file name>     the model file, stored by content
    <name>/blobs/<sha256>/reference/<f>   an optional reference profile
    <name>/versions/<N>.json              version N: sha256, schema, objective, metadata
    <name>/aliases/<alias>.json           the version an alias points at, and its history

A version exists once its ``versions/<N>.json`` exists: it is created with an atomic
create-if-absent (a hard link on a disk, a conditional put ``If-None-Match: *`` on S3), so
two registrations never get the same number (the loser retries with the next). Blobs are
written before the version document and are named by their sha256, so concurrent
writers of the same bytes cannot disturb each other.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kernels
from engine._lakefs import LakeStore
from engine.errors import BadInputError
from engine.storage import Storage, is_uri, local_copy

log = logging.getLogger("lakescore.registry")

REGISTRY_ENV = "LAKESCORE_REGISTRY"
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_REF = re.compile(rf"^({_NAME})@({_NAME})$")
_MAX_RETRIES = 1000


def is_registry_ref(value: str) -> bool:
    """``NAME@VERSION`` or ``NAME@ALIAS`` (no ``/``: a path never looks like one)."""
    return _REF.match(value) is not None


def registry_location(explicit: str | None) -> str | None:
    """``--registry`` / the job's ``registry``, else ``$LAKESCORE_REGISTRY``, else none."""
    return explicit or os.environ.get(REGISTRY_ENV) or None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _check_name(kind: str, value: str) -> None:
    if not re.fullmatch(_NAME, value):
        raise BadInputError(f"{kind} {value!r}: use letters, digits, '_', '.', '-'")


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: its local file and, for a registry model, what it must be."""

    path: str
    sha256: str | None = None  # expected sha256 (registry models); None: take the file's
    name: str | None = None
    version: int | None = None
    alias: str | None = None
    registry: str | None = None
    #: the reference profile registered with this version (a local file) and its sha256
    reference: str | None = None
    reference_sha256: str | None = None

    def record(self, sha256: str) -> dict[str, Any]:
        """What a run record says about this model."""
        doc: dict[str, Any] = {"path": self.path, "sha256": sha256}
        if self.name is not None:
            doc.update(
                registry=self.registry, name=self.name, version=self.version, alias=self.alias
            )
        return doc

    def load(self, *, trust_pickle: bool = False) -> kernels.Forest:
        """Load the model; a registry model whose file changed is bad input (exit 2)."""
        try:
            forest = kernels.load_model(self.path, trust_pickle=trust_pickle)
        except kernels.KernelError as exc:
            raise BadInputError(str(exc)) from None
        if self.sha256 is not None and forest.sha256 != self.sha256:
            raise BadInputError(
                f"{self.name}@{self.version}: the stored model file {self.path} has sha256 "
                f"{forest.sha256[:12]}..., the registry recorded {self.sha256[:12]}... "
                "(the file was changed or damaged)"
            )
        return forest


class Registry:
    """Versions and aliases of named models under one root."""

    def __init__(self, root: str, storage: Storage | None = None) -> None:
        self.root = root
        self.store = LakeStore(root, storage)

    # ---- writing
    def register(
        self,
        model_file: str | Path,
        name: str,
        *,
        reference: str | Path | None = None,
        metadata: dict[str, str] | None = None,
        trust_pickle: bool = False,
    ) -> dict[str, Any]:
        """Store ``model_file`` as the next version of ``name``; returns its document."""
        _check_name("model name", name)
        model_file = Path(model_file)
        forest = ResolvedModel(str(model_file)).load(trust_pickle=trust_pickle)
        if reference is not None:  # a variant run judges drift against it: check it now
            from engine.quality.reference import load_profile

            load_profile(reference)
        data = model_file.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        blob = f"{name}/blobs/{sha256}"
        self.store.write_if_absent(f"{blob}/{model_file.name}", data)
        doc: dict[str, Any] = {
            "name": name,
            "sha256": sha256,
            "file": f"blobs/{sha256}/{model_file.name}",
            "format": forest.source_format,
            "objective": forest.objective,
            "num_outputs": forest.num_outputs,
            "num_classes": _num_classes(forest),
            "classes": forest.classes(),
            "features": _feature_schema(forest),
            "reference": None,
            "metadata": dict(metadata or {}),
            "registered_at": _now(),
            "registered_by": _user(),
        }
        if reference is not None:
            ref = Path(reference)
            try:
                ref_data = ref.read_bytes()
            except OSError as exc:
                raise BadInputError(f"--reference {ref}: {exc.strerror}") from None
            self.store.write_if_absent(f"{blob}/reference/{ref.name}", ref_data)
            doc["reference"] = {
                "file": f"blobs/{sha256}/reference/{ref.name}",
                "sha256": hashlib.sha256(ref_data).hexdigest(),
            }
        version = self._next_version(name)
        for _ in range(_MAX_RETRIES):
            doc["version"] = version
            body = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
            if self.store.create_exclusive(f"{name}/versions/{version}.json", body):
                log.info("registered %s@%d (sha256 %s)", name, version, sha256[:12])
                return doc
            version += 1  # someone registered this number first: take the next one
        raise BadInputError(f"registry {self.root}: could not claim a version for {name}")

    def set_alias(self, name: str, version: int, alias: str) -> dict[str, Any]:
        """Point ``name@alias`` at ``version`` (aliases move; the history is kept)."""
        _check_name("alias", alias)
        if alias.isdigit():
            raise BadInputError(f"alias {alias!r}: an alias cannot be a number (versions are)")
        self.version(name, version)  # must exist
        rel = f"{name}/aliases/{alias}.json"
        previous = json.loads(self.store.read_bytes(rel)) if self.store.exists(rel) else None
        history = list(previous.get("history", [])) if previous else []
        if previous:
            history.append({"version": previous["version"], "set_at": previous["set_at"]})
        doc = {"alias": alias, "version": version, "set_at": _now(), "history": history}
        self.store.write_atomic(rel, (json.dumps(doc, indent=2) + "\n").encode())
        return doc

    # ---- reading
    def names(self) -> list[str]:
        return [n for n in self.store.list_names("") if not n.startswith((".", "_"))]

    def versions(self, name: str) -> list[int]:
        found = self.store.list_names(f"{name}/versions")
        return sorted(int(n[:-5]) for n in found if n.endswith(".json") and n[:-5].isdigit())

    def version(self, name: str, version: int) -> dict[str, Any]:
        rel = f"{name}/versions/{version}.json"
        if not self.store.exists(rel):
            raise BadInputError(f"registry {self.root}: no model {name}@{version}")
        return json.loads(self.store.read_bytes(rel))

    def aliases(self, name: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for entry in self.store.list_names(f"{name}/aliases"):
            if entry.endswith(".json") and not entry.startswith("."):
                out[entry[:-5]] = json.loads(self.store.read_bytes(f"{name}/aliases/{entry}"))
        return out

    def resolve(self, ref: str) -> ResolvedModel:
        """``NAME@VERSION`` or ``NAME@ALIAS`` -> the stored file and its recorded sha256."""
        match = _REF.match(ref)
        if match is None:
            raise BadInputError(f"model {ref!r}: expected NAME@VERSION or NAME@ALIAS")
        name, tag = match.groups()
        alias = None
        if tag.isdigit():
            version = int(tag)
        else:
            alias = tag
            rel = f"{name}/aliases/{alias}.json"
            if not self.store.exists(rel):
                raise BadInputError(f"registry {self.root}: model {name} has no alias {alias!r}")
            version = int(json.loads(self.store.read_bytes(rel))["version"])
        doc = self.version(name, version)
        reference = doc.get("reference") or {}
        return ResolvedModel(
            path=self.store.local_file(f"{name}/{doc['file']}"),
            sha256=doc["sha256"],
            name=name,
            version=version,
            alias=alias,
            registry=self.root,
            reference=self.store.local_file(f"{name}/{reference['file']}") if reference else None,
            reference_sha256=reference.get("sha256"),
        )

    def _next_version(self, name: str) -> int:
        existing = self.versions(name)
        return existing[-1] + 1 if existing else 1


def resolve_model(
    model: str, registry: str | None, storage: Storage | None = None
) -> ResolvedModel:
    """A job's ``model``: a registry reference when it looks like one and is no file.

    The result's ``path`` is a local file: an ``s3://`` model, or a model of a registry on
    S3, is downloaded first (its sha256 is checked when it is loaded).
    """
    if is_uri(model):
        return ResolvedModel(path=str(local_copy(model, storage or Storage.of(None))))
    if not is_registry_ref(model) or os.path.exists(model):
        return ResolvedModel(path=model)
    root = registry_location(registry)
    if root is None:
        raise BadInputError(
            f"model {model!r} names a registry model but no registry is set "
            f"(--registry, ${REGISTRY_ENV} or registry = in the job file)"
        )
    return Registry(root, storage).resolve(model)


def resolve_model_value(value: str, base_dir: Path) -> str:
    """A job file's ``model``: a registry reference stays as it is (unless a file of that
    name sits beside the job file); a path becomes absolute, as other paths do."""
    if "://" in value or (is_registry_ref(value) and not (base_dir / value).exists()):
        return value
    return os.path.abspath(base_dir / Path(value).expanduser())


def _num_classes(forest: kernels.Forest) -> int | None:
    classes = forest.classes()
    return len(classes) if classes else None


def _feature_schema(forest: kernels.Forest) -> list[dict[str, str]]:
    types = forest.metadata.get("feature_types", "")
    kinds = types.split(",") if types else ["float"] * forest.num_features
    return [{"name": n, "type": t} for n, t in zip(forest.feature_names, kinds, strict=True)]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
