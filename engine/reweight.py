"""Write proposed variant weights back into a job file, for the next run.

Only the numbers after ``weight =`` in the ``[variants.models]`` entries change; comments,
order and every other key stay as they were. The new text is parsed as a job file before
it replaces the old one (atomically), so a failed edit leaves the file untouched.
"""

from __future__ import annotations

import re
from pathlib import Path

from engine._fsutil import atomic_write_bytes
from engine.errors import BadInputError


def write_weights(job_file: str | Path, weights: dict[str, float]) -> None:
    from engine.spec import load_job_file, spec_from_mapping

    path = Path(job_file)
    spec = load_job_file(path)
    if spec.variants is None:
        raise BadInputError(f"{path}: has no [variants] to reweight")
    listed = [v.name for v in spec.variants.variants]
    if sorted(listed) != sorted(weights):
        raise BadInputError(
            f"{path}: variants {', '.join(listed)} differ from the evaluated run's "
            f"{', '.join(weights)}"
        )
    text = path.read_text(encoding="utf-8")
    for name, weight in weights.items():
        key = re.escape(name)
        entry = re.compile(
            rf"^(\s*(?:{key}|\"{key}\"|'{key}')\s*=\s*\{{[^}}\n]*?\bweight\s*=\s*)"
            r"([-+0-9.eE_]+)",
            re.MULTILINE,
        )
        text, count = entry.subn(lambda m, w=weight: f"{m.group(1)}{w:.4g}", text)
        if count != 1:
            raise BadInputError(
                f"{path}: cannot find variant {name}'s inline weight to rewrite "
                "(write it as NAME = {{ model = ..., weight = W }})"
            )
    import tomllib

    check = spec_from_mapping(tomllib.loads(text), base_dir=path.parent, origin=str(path))
    if check.variants is None or [v.name for v in check.variants.variants] != listed:
        raise BadInputError(f"{path}: rewriting the weights changed the variants")
    atomic_write_bytes(path, text.encode("utf-8"))
