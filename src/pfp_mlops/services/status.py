"""`pfp status`: versions, aliases, stage tags and key metrics; reports drift between aliases and tags."""

from __future__ import annotations

from typing import Any

from pfp_mlops.services.context import Context


def run_status(ctx: Context) -> dict[str, Any]:
    reg, rc, name = ctx.registry, ctx.cfg.registry, ctx.model_name
    if not reg.model_exists(name):
        return {"model": name, "tracking_uri": _safe(ctx.settings.tracking_uri()), "versions": [], "aliases": {},
                "drift": []}
    versions = reg.versions(name)
    aliases = {a: v.version for v in versions for a in v.aliases}
    drift = []
    alias_stage = {rc.production_alias: "production", rc.staging_alias: "staging"}
    for v in versions:
        expected = next((alias_stage[a] for a in v.aliases if a in alias_stage), None)
        if expected and v.stage != expected:
            drift.append(f"v{v.version} holds alias {expected} but is tagged stage={v.stage}")
        if not expected and v.stage in ("production", "staging"):
            drift.append(f"v{v.version} is tagged stage={v.stage} but holds no {v.stage} alias")
    rows = [
        {"version": v.version, "aliases": v.aliases, "stage": v.stage, "map50": v.metric("map50"),
         "recall": v.metric("recall"), "split_fingerprint": v.tags.get("split_fingerprint"),
         "run_id": v.run_id}
        for v in versions
    ]
    return {"model": name, "tracking_uri": _safe(ctx.settings.tracking_uri()), "versions": rows,
            "aliases": aliases, "drift": drift}


def _safe(uri: str) -> str:
    if "@" in uri:
        scheme, _, rest = uri.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri
