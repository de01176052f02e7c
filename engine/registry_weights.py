"""Variant weights kept in the model registry, for the next run of a campaign.

``lakescore evaluate --registry-weights CAMPAIGN`` stores the proposed weights in
``<registry>/_campaigns/<CAMPAIGN>.json`` (replaced atomically; earlier weights stay in its
``history``). A job whose ``[variants]`` table says ``campaign = "CAMPAIGN"`` takes its
weights from there when that document exists; the job file's own weights are the starting
point before any evaluation. The run record's ``variant_plan.weights_source`` says which
(``job`` or ``registry:CAMPAIGN``). Names starting with ``_`` are not models, so the
registry's model listing skips the folder.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from engine.errors import BadInputError
from engine.registry import Registry

CAMPAIGNS = "_campaigns"
_CAMPAIGN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_campaign(name: str, where: str) -> str:
    if not isinstance(name, str) or not _CAMPAIGN.match(name):
        raise BadInputError(f"{where}: campaign {name!r}: use letters, digits, '_', '.', '-'")
    return name


def read_registry_weights(root: str, campaign: str) -> dict[str, Any] | None:
    """The campaign's weights document, or None when no evaluation has written one."""
    store = Registry(root).store
    rel = f"{CAMPAIGNS}/{campaign}.json"
    if not store.exists(rel):
        return None
    try:
        doc = json.loads(store.read_bytes(rel))
        weights = {str(k): float(v) for k, v in doc["weights"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInputError(f"registry {root}: {rel} is damaged ({exc})") from None
    if not weights or any(not w > 0 for w in weights.values()):
        raise BadInputError(f"registry {root}: {rel}: weights must be positive numbers")
    return {**doc, "weights": weights}


def write_registry_weights(
    root: str,
    campaign: str,
    weights: dict[str, float],
    *,
    run_id: str | None = None,
    evaluation_id: str | None = None,
) -> dict[str, Any]:
    """Store ``weights`` as the campaign's next-run weights; returns the document."""
    check_campaign(campaign, "--registry-weights")
    previous = read_registry_weights(root, campaign)
    history = list(previous.get("history", [])) if previous else []
    if previous:
        history.append({k: previous.get(k) for k in ("weights", "set_at", "run_id")})
    doc = {
        "campaign": campaign,
        "weights": {k: float(v) for k, v in weights.items()},
        "set_at": dt.datetime.now(dt.UTC).isoformat(),
        "run_id": run_id,
        "evaluation_id": evaluation_id,
        "history": history,
    }
    body = (json.dumps(doc, indent=2) + "\n").encode()
    Registry(root).store.write_atomic(f"{CAMPAIGNS}/{campaign}.json", body)
    return doc
