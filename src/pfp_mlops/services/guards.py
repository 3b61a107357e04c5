"""Guards shared by promote, validate and the regression watch: the same-split guard and the leakage check.

A version carries `training_split_fingerprint` (the split it was trained on) and `split_manifest_uri` (that
split's manifest with every item, logged to its training run at registration), so both checks need nothing but
the registry and the current split.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pfp_mlops.domain.errors import GateFailed
from pfp_mlops.domain.gates import leaked_test_items
from pfp_mlops.domain.models import ModelVersionInfo, SplitManifest
from pfp_mlops.services.context import Context
from pfp_mlops.services.split import MANIFEST

SPLIT_MANIFEST_TAG = "split_manifest_uri"


class SplitMismatch(GateFailed):
    """A challenger trained on another split than the current one (exit 10, nothing changed)."""


class LeakedTestSplit(GateFailed):
    """The current test split holds images a compared model was trained on (exit 10, nothing changed)."""


def split_guard(ctx: Context, info: ModelVersionInfo, manifest: SplitManifest, *, allow: bool,
                role: str = "challenger") -> list[str]:
    """Refuse a model trained on another split than the current one, unless allowed; returns ledger reasons."""
    trained = info.tags.get("training_split_fingerprint") or "unknown"
    current = manifest.fingerprint
    if trained == current:
        return []
    what = (f"{role} v{info.version} was trained on split {trained} but the current split is {current}")
    if allow:
        ctx.say(f"warning: {what} (allowed by --allow-split-mismatch)")
        return [f"split mismatch allowed (--allow-split-mismatch): {what}"]
    raise SplitMismatch(f"{what}; run `pfp train` and `pfp register` on the current split (or `pfp split` to restore "
                        f"the split it was trained on), or pass --allow-split-mismatch",
                        details={"trained_split": trained, "current_split": current, "version": info.version})


def leakage_guard(ctx: Context, versions: list[tuple[str, ModelVersionInfo]], manifest: SplitManifest) -> list[str]:
    """Refuse a comparison when the current TEST split holds images a compared model was trained on."""
    notes: list[str] = []
    leaks: list[str] = []
    for role, info in versions:
        if info.tags.get("training_split_fingerprint") == manifest.fingerprint:
            continue  # trained on this very split: its test items were never in its training set
        trained = training_items(ctx, info)
        if trained is None:
            notes.append(f"leakage not checked for {role} v{info.version}: no training split manifest stored with it")
            continue
        n = len(leaked_test_items(trained, manifest.items))
        if n:
            leaks.append(f"{n} of the current {manifest.counts['test']} test images were in the train/valid "
                         f"sets of {role} v{info.version}")
    if leaks:
        raise LeakedTestSplit(f"comparison refused as leaked: {'; '.join(leaks)}; evaluate on a split that "
                              f"none of the compared models was trained on", details={"leaks": leaks})
    for n in notes:
        ctx.say(f"warning: {n}")
    return notes


def store_training_manifest(ctx: Context, run_id: str, training_fp: str, manifest: SplitManifest) -> str | None:
    """At registration: log the training split's manifest to the training run; its URI goes on the version.

    Only when the current split is the one the model was trained on (otherwise the training manifest is gone).
    """
    if not training_fp or training_fp != manifest.fingerprint:
        return None
    src = ctx.cfg.paths.dataset_dir / MANIFEST
    if not src.is_file():
        return None
    uri = ctx.registry.log_run_artifact(run_id, src, "split")
    cached = _cache_path(ctx, training_fp)
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, cached)
    return uri


def training_items(ctx: Context, info: ModelVersionInfo) -> dict[str, list[str]] | None:
    """The item list (path → [content hash, split]) of the split a version was trained on, or None."""
    fp = info.tags.get("training_split_fingerprint") or ""
    uri = info.tags.get(SPLIT_MANIFEST_TAG)
    if not uri or not fp:
        return None
    cached = _cache_path(ctx, fp)
    if not cached.is_file():
        tmp = ctx.home / "cache" / "manifests" / f".download-{info.version}"
        shutil.rmtree(tmp, ignore_errors=True)
        got = ctx.registry.download(uri, tmp)
        path = got if got.is_file() else next(iter(sorted(got.glob("**/*.json"))), None)
        if path is None:
            return None
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), cached)
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        return json.loads(cached.read_text(encoding="utf-8")).get("items")
    except (OSError, json.JSONDecodeError):
        return None


def _cache_path(ctx: Context, fingerprint: str) -> Path:
    return ctx.home / "cache" / "manifests" / f"{fingerprint}.json"
