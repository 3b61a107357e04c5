"""`pfp register`: TEST evaluation → minimum-score gate → runtime checks → a new registry version (stage=candidate).

Nothing is registered unless every check passes: the model is logged under its training run first, loaded back in
a fresh process, and only then becomes a version.
"""

from __future__ import annotations

import json
from pathlib import Path

from pfp_mlops.domain.errors import GateFailed
from pfp_mlops.domain.gates import register_gate
from pfp_mlops.domain.models import Decision, RegisterResult, SplitManifest
from pfp_mlops.domain.transitions import plan_record
from pfp_mlops.services import lifecycle
from pfp_mlops.services.context import Context, git_state, who
from pfp_mlops.services.evaluation import EVAL_TAG_PREFIX, evaluate_weights, metric_tags
from pfp_mlops.services.guards import SPLIT_MANIFEST_TAG, store_training_manifest
from pfp_mlops.services.split import current_split
from pfp_mlops.services.train import read_training_info


def run_register(ctx: Context, *, training_info: Path | None = None, check_env: str | None = None) -> RegisterResult:
    """`check_env`: an MLflow env manager (uv, virtualenv, conda) for the opt-in isolated-environment check."""
    from pfp_mlops.adapters import packaging, yolo

    info = read_training_info(ctx, training_info)
    # a malformed PFP_PRODUCTION_RUNTIME stops here (exit 2, the variable named), not after the evaluation
    packaging.runtime_mismatches(packaging.read_production_runtime(ctx.settings.production_runtime), {})
    manifest = current_split(ctx.cfg)
    weights = Path(info["weights"])
    ev = evaluate_weights(ctx, weights, manifest)
    ctx.say(f"test mAP50 {ev.map50:.4f} (mAP50-95 {ev.map50_95:.4f}, recall {ev.recall:.4f})")
    gate = ctx.cfg.gates.register_
    decision = register_gate(ev, min_map50=gate.min_map50)
    metrics = {"map50": ev.map50, "map50_95": ev.map50_95, "recall": ev.recall, "precision": ev.precision}

    def refuse(d: Decision, outcome: str) -> GateFailed:
        lifecycle.record(ctx, plan_record(ctx.model_name, "register", outcome, decision=d, metrics=metrics,
                                          extra={"training_run_id": info["run_id"]}))
        return GateFailed(f"not registered: {'; '.join(d.reasons)}", decision=d)

    if not decision.passed:
        raise refuse(decision, "refused")

    # package metadata first (no torch import when the evaluation was cached): a declared runtime this
    # environment cannot satisfy is refused before anything is logged
    runtime = yolo.library_versions()
    declared = packaging.read_production_runtime(ctx.settings.production_runtime)
    mismatches = packaging.runtime_mismatches(declared, runtime)
    if mismatches:
        raise refuse(Decision("runtime", False, mismatches, {}), "refused_runtime")

    ctx.registry  # noqa: B018 - points MLflow's fluent API (log_pyfunc) at the configured store first
    model_uri = packaging.log_pyfunc(weights, run_id=info["run_id"], imgsz=ctx.cfg.evaluation.imgsz)
    sample = _sample_image(manifest)
    try:
        check = packaging.fresh_process_check(model_uri, sample)
    except GateFailed as e:
        raise refuse(Decision("runtime", False, [e.message], {}), "refused_runtime") from None
    ctx.say(f"runtime check: loaded and predicted in a fresh process in {check.get('seconds')}s")
    # the versions the fresh process really loaded the model with (CUDA included) are the ones tagged and held
    # against the declared production runtime
    runtime = {**runtime, **check.get("runtime", {})}
    mismatches = packaging.runtime_mismatches(declared, runtime)
    if mismatches:
        raise refuse(Decision("runtime", False, mismatches, {}), "refused_runtime")
    env_check = None
    if check_env:
        ctx.say(f"--check-env: building an isolated {check_env} environment from the model's requirements")
        try:
            env_check = packaging.isolated_env_check(model_uri, sample, env_manager=check_env,
                                                     workdir=ctx.home / "env-check")
        except GateFailed as e:
            raise refuse(Decision("runtime", False, [e.message], {}), "refused_env_check") from None
        ctx.say(f"--check-env: passed in {env_check['seconds']}s")
    training_fp = info.get("split_fingerprint", "")
    manifest_uri = store_training_manifest(ctx, info["run_id"], training_fp, manifest)
    if manifest_uri is None:
        ctx.say("warning: the current split is not the one this model was trained on; its training manifest is "
                "not stored, so leakage cannot be checked against it later")
    run_tags = ctx.registry.run_tags(info["run_id"])

    tags = {
        "stage": "candidate",
        **metric_tags(ev),
        EVAL_TAG_PREFIX + ev.protocol_fingerprint: json.dumps(ev.to_dict()),
        "split_fingerprint": manifest.fingerprint,
        "training_split_fingerprint": training_fp,
        "training_run_id": info["run_id"],
        "registered_by": who(),
        "runtime_check": "passed",
        **{f"runtime.{k}": v for k, v in runtime.items()},
        **git_state(),
    }
    # lineage that only exists sometimes: DVC data version (pfp_mlops.adapters.dvc writes it into
    # training_info.json), the training run's own commit, the stored training manifest, the env check
    if info.get("data_version"):
        tags["data_version"] = info["data_version"]
    src = info.get("data_source") or {}
    if src:  # where the data came from (`pfp ingest`): format, content digest, ingest report digest
        tags.update({"data_source": src.get("format", ""), "data_source_digest": src.get("dataset_digest", "")[:16],
                     "data_source_report_digest": src.get("report_digest", "")[:16]})
    for key in ("git_commit", "git_dirty"):
        if run_tags.get(f"pfp.{key}"):
            tags[f"training_{key}"] = run_tags[f"pfp.{key}"]
    if manifest_uri:
        tags[SPLIT_MANIFEST_TAG] = manifest_uri
    if env_check:
        tags["env_check"] = f"passed ({env_check['env_manager']})"
    if declared:
        tags["production_runtime"] = "; ".join(declared)
    version = ctx.registry.register(ctx.model_name, model_uri, info["run_id"], {k: str(v) for k, v in tags.items()})
    entry = lifecycle.record(ctx, plan_record(ctx.model_name, "register", "registered", to_version=version,
                                              decision=decision, metrics=metrics,
                                              extra={"training_run_id": info["run_id"]}))
    return RegisterResult(name=ctx.model_name, version=version, decision=decision, evaluation=ev,
                          model_uri=f"models:/{ctx.model_name}/{version}", ledger_run_id=entry)


def _sample_image(manifest: SplitManifest) -> Path:
    test_list = manifest.list_file("test")
    first = next((ln for ln in test_list.read_text().splitlines() if ln.strip()), None)
    if first is None:
        raise GateFailed("runtime check: the test split has no image to predict on")
    return Path(first)
