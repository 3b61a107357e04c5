"""`pfp status`: versions, aliases, stage tags and key metrics; reports drift between aliases and tags."""

from __future__ import annotations

from typing import Any

from pfp_mlops.domain.errors import NotFoundError
from pfp_mlops.domain.models import ModelVersionInfo
from pfp_mlops.domain.rollback_policy import tag_repairs
from pfp_mlops.services.context import Context
from pfp_mlops.uris import public_uri


def run_status(ctx: Context) -> dict[str, Any]:
    reg, name = ctx.registry, ctx.model_name
    try:
        versions = reg.versions(name)  # one read of the registered model, one search of its versions
    except NotFoundError:
        return {"model": name, "tracking_uri": public_uri(ctx.settings.tracking_uri()), "versions": [], "aliases": {},
                "drift": [], "pending": []}
    aliases = {a: v.version for v in versions for a in v.aliases}
    drift = [f"v{v} {why} but is tagged stage={now} (should be {want})"
             for v, now, want, why in drift_of(ctx, versions)]
    rows = [
        {"version": v.version, "aliases": v.aliases, "stage": v.stage, "map50": v.metric("map50"),
         "recall": v.metric("recall"), "split_fingerprint": v.tags.get("split_fingerprint"),
         "run_id": v.run_id}
        for v in versions
    ]
    return {"model": name, "tracking_uri": public_uri(ctx.settings.tracking_uri()), "versions": rows,
            "aliases": aliases, "drift": drift, "pending": pending_report(ctx)}


def pending_report(ctx: Context) -> list[dict[str, Any]]:
    """Lifecycle entries a killed command left pending, with what `pfp repair` will do with each."""
    from pfp_mlops.services import lifecycle

    out = []
    for e in lifecycle.pending(ctx):
        res = lifecycle.resolution(ctx, e)
        out.append({"run_id": e["run_id"], "action": e.get("action"), "outcome": e.get("outcome"),
                    "from_version": e.get("from_version"), "to_version": e.get("to_version"), "when": e.get("when"),
                    "repair_will": res.verdict, "why": res.why})
    return out


def drift_of(ctx: Context, versions: list[ModelVersionInfo]) -> list[tuple[int, str | None, str, str]]:
    """Stage tags that disagree with the aliases (the aliases are the truth)."""
    rc = ctx.cfg.registry
    holders: dict[str, int | None] = {"production": None, "staging": None}
    for v in versions:
        if rc.production_alias in v.aliases:
            holders["production"] = v.version
        if rc.staging_alias in v.aliases:
            holders["staging"] = v.version
    return tag_repairs({v.version: v.stage for v in versions}, holders)

