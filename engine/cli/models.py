"""``models register|list|alias``: the model registry (see :mod:`engine.registry`)."""

from __future__ import annotations

import argparse
import json

from engine.cli._common import add_trust_flag
from engine.errors import BadInputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="the model registry: register, list, alias")
    models = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    r = models.add_parser("register", help="store a model file as the next version of NAME")
    r.add_argument("file", help="model file")
    r.add_argument("--name", required=True)
    r.add_argument("--reference", help="reference profile file stored with the version")
    r.add_argument(
        "--meta", action="append", default=[], metavar="KEY=VALUE", help="metadata (repeatable)"
    )
    _add_registry(r)
    add_trust_flag(r)
    r.add_argument("--json", action="store_true")
    r.set_defaults(handler=_cmd_register)

    ls = models.add_parser("list", help="models, or the versions and aliases of NAME")
    ls.add_argument("name", nargs="?")
    _add_registry(ls)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_cmd_list)

    a = models.add_parser("alias", help="point NAME@ALIAS at a version: alias NAME@N ALIAS")
    a.add_argument("target", metavar="NAME@N")
    a.add_argument("alias")
    _add_registry(a)
    a.set_defaults(handler=_cmd_alias)


def _add_registry(p: argparse.ArgumentParser) -> None:
    p.add_argument("--registry", help="registry root (default: $LAKESCORE_REGISTRY)")


def _open(args: argparse.Namespace):  # -> Registry (imported lazily: --help stays fast)
    from engine.registry import REGISTRY_ENV, Registry, registry_location

    root = registry_location(args.registry)
    if root is None:
        raise BadInputError(f"no registry: pass --registry PATH or set ${REGISTRY_ENV}")
    return Registry(root)


def _parse_meta(pairs: list[str]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInputError(f"--meta {pair!r}: expected KEY=VALUE")
        meta[key] = value
    return meta


def _cmd_register(args: argparse.Namespace) -> int:
    doc = _open(args).register(
        args.file,
        args.name,
        reference=args.reference,
        metadata=_parse_meta(args.meta),
        trust_pickle=args.trust_pickle,
    )
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print(f"registered {doc['name']}@{doc['version']} (sha256 {doc['sha256'][:12]}...)")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    registry = _open(args)
    if args.name is None:
        names = registry.names()
        listing = {n: {"versions": registry.versions(n)} for n in names}
        if args.json:
            print(json.dumps(listing, indent=2))
            return 0
        for name, info in listing.items():
            versions = info["versions"]
            latest = versions[-1] if versions else "-"
            print(f"{name:<24}{len(versions)} version(s), latest {latest}")
        return 0
    versions = [registry.version(args.name, v) for v in registry.versions(args.name)]
    if not versions:
        raise BadInputError(f"registry {registry.root}: no model named {args.name!r}")
    aliases = registry.aliases(args.name)
    if args.json:
        print(json.dumps({"versions": versions, "aliases": aliases}, indent=2, sort_keys=True))
        return 0
    by_version: dict[int, list[str]] = {}
    for alias, doc in sorted(aliases.items()):
        by_version.setdefault(int(doc["version"]), []).append(alias)
    for doc in versions:
        tags = ",".join(by_version.get(doc["version"], [])) or "-"
        print(
            f"{args.name}@{doc['version']:<4} {tags:<16} {doc['objective']:<20} "
            f"{len(doc['features'])} features  sha256 {doc['sha256'][:12]}  "
            f"{doc['registered_at'][:19]}"
        )
    return 0


def _cmd_alias(args: argparse.Namespace) -> int:
    name, sep, version = args.target.partition("@")
    if not sep or not version.isdigit():
        raise BadInputError(f"{args.target!r}: expected NAME@VERSION (a version number)")
    doc = _open(args).set_alias(name, int(version), args.alias)
    print(f"{name}@{args.alias} -> version {doc['version']}")
    return 0
