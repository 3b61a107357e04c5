"""`pfp ingest` then `pfp run-all` on a Roboflow-style export: the ingested data trains, registers and reaches
production, and its lineage travels: ingest report → split manifest → the training run's dataset input → the
version's tags."""

from __future__ import annotations

import json

import pytest
from tests import ingest_exports as X
from tests.helpers import TINY, client, pfp, write_config


@pytest.mark.slow
def test_ingest_then_run_all(workdir):
    export = X.roboflow_yolo(workdir / "exports", imgsz=64)
    before = X.tree_digest(export)
    cfg = write_config(workdir / "cfg.yaml", TINY, data={"classes_file": "data/classes.yaml"},
                       split={"allow_missing_classes": True}, train__epochs=1, train__imgsz=64,
                       evaluation__imgsz=64)
    r = pfp("ingest", str(export), "--config", str(cfg))
    assert r.exit_code == 0, r.output
    r = pfp("run-all", "--config", str(cfg), "--json")
    assert r.exit_code == 0, r.output
    steps = {s["step"]: s["status"] for s in json.loads(r.stdout)["result"]["steps"]}
    assert steps == dict.fromkeys(("split", "train", "register", "promote", "validate"), "ok")
    assert X.tree_digest(export) == before

    manifest = json.loads((workdir / "dataset" / "split_manifest.json").read_text())
    source = manifest["source"]
    assert source["format"] == "roboflow" and source["images"] == 42
    c = client()
    info = json.loads((workdir / "runs" / "training_info.json").read_text())
    run = c.get_run(info["run_id"])
    (ds_input,) = run.inputs.dataset_inputs
    assert ds_input.dataset.digest == manifest["fingerprint"]
    assert ds_input.dataset.name == "roboflow:rf-yolo"
    assert json.loads(ds_input.dataset.profile)["source"]["dataset_digest"] == source["dataset_digest"]
    assert {t.key: t.value for t in ds_input.tags}["mlflow.data.context"] == "training"
    assert run.data.tags["pfp.data_source_digest"] == source["dataset_digest"][:16]
    assert [a.path for a in c.list_artifacts(info["run_id"], "data")] == ["data/ingest_report.json"]
    version = c.get_model_version_by_alias("pfp-detector", "production")
    assert version.tags["data_source"] == "roboflow"
    assert version.tags["data_source_digest"] == source["dataset_digest"][:16]
    assert version.tags["data_source_report_digest"] == source["report_digest"][:16]
