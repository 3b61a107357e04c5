"""The public Python API without training: opening, error paths, gate outcomes as values, their exit codes."""

from __future__ import annotations

import json

import pytest

from pfp_mlops.api import Project, Refused, StatusReport, outcome_error
from pfp_mlops.cli.errors import exit_code_of_outcome
from pfp_mlops.domain.errors import (
    ConcurrentPromotion,
    ConfigError,
    DataError,
    GateFailed,
    Inconclusive,
    RegressionRolledBack,
    UserError,
)
from pfp_mlops.domain.models import Decision, PipelineResult, RegressionResult, StepOutcome, ValidateResult
from pfp_mlops.outcomes import as_outcome


def _validate(action: str, passed: bool, verdict: str) -> ValidateResult:
    return ValidateResult("m", 2, 1, Decision("validate", passed, ["why"], verdict=verdict), action, production=1)


def test_open_sets_up_like_the_cli(workdir, monkeypatch):
    """Settings, config with overrides, the log file under PFP_HOME and the offline switches, as `pfp` does."""
    monkeypatch.delenv("YOLO_OFFLINE", raising=False)
    project = Project.open(workdir, overrides={"train.epochs": 2}, profile="demo")
    assert project.root == workdir and project.config.train.epochs == 2 and project.model_name == "pfp-detector"
    assert (workdir / ".pfp" / "logs" / "pfp.log").is_file()
    import os

    assert os.environ["YOLO_OFFLINE"] == "1"


def test_open_reads_the_project_folder_not_the_caller_cwd(workdir, tmp_path_factory, monkeypatch):
    """`.env` and configs/<profile>.yaml are the project's; the caller's working directory is restored."""
    other = tmp_path_factory.mktemp("elsewhere")
    (workdir / ".env").write_text("PFP_MODEL_NAME=from-project-env\n")
    (workdir / "configs").mkdir()
    (workdir / "configs" / "mine.yaml").write_text("train: {epochs: 7}\n")
    monkeypatch.chdir(other)
    project = Project.open(workdir, profile="mine", overrides=["train.batch=2"])
    assert project.model_name == "from-project-env"
    assert (project.config.train.epochs, project.config.train.batch) == (7, 2)
    assert project.__class__.__module__ == "pfp_mlops.api" and str(workdir) in repr(project)
    import os

    assert os.getcwd() == str(other)


@pytest.mark.parametrize(("kwargs", "error", "needle"), [
    ({"overrides": {"train.epoch": 1}}, ConfigError, "overrides['train.epoch']: train.epoch: unknown key"),
    ({"overrides": ["train.epochs=x"]}, ConfigError, "--set train.epochs=x: train.epochs: Input should be"),
    ({"profile": "nope"}, ConfigError, "unknown profile 'nope'"),
    ({"config": "missing.yaml"}, ConfigError, "config file not found"),
])
def test_open_errors_are_exceptions_naming_the_problem(workdir, kwargs, error, needle):
    """Bad input raises the pfp exception (the CLI's exit 2), naming the key, profile or file."""
    with pytest.raises(error) as e:
        Project.open(workdir, **kwargs)
    assert needle in e.value.message


def test_open_names_a_bad_environment_variable_and_a_missing_folder(workdir, monkeypatch):
    monkeypatch.setenv("PFP_DEVICE", "gpu-please")
    with pytest.raises(ConfigError, match="PFP_DEVICE"):
        Project.open(workdir)
    monkeypatch.delenv("PFP_DEVICE")
    with pytest.raises(ConfigError, match="project folder not found"):
        Project.open(workdir / "nope")


def test_steps_without_inputs_raise_errors_not_outcomes(workdir):
    """A missing dataset or training is an error (exit 2), raised; nothing is written."""
    project = Project.open(workdir)
    with pytest.raises(DataError, match="dataset_info.csv"):
        project.split()
    with pytest.raises(DataError, match="training_info.json not found"):
        project.register()
    with pytest.raises(UserError, match="--limit"):
        project.history(limit=0)
    with pytest.raises(UserError, match="to_version must be a positive integer"):
        project.rollback(to_version=0)
    with pytest.raises(UserError, match="tolerance"):
        project.regression_watch(tolerance=2)
    with pytest.raises(ConfigError, match="device: invalid device"):
        project.train(device="gpu")
    assert not (workdir / "dataset").exists() and not (workdir / "runs").exists()


def test_split_with_demo_generates_data_and_returns_the_typed_manifest(workdir):
    """`split(demo=True)` writes the synthetic dataset when missing; the manifest is typed, items read back."""
    from pfp_mlops.services.split import read_manifest

    project = Project.open(workdir, overrides={"demo.n_images": 24, "demo.imgsz": 32,
                                               "split.allow_missing_classes": True})
    m = project.split(demo=True)
    assert sum(m.counts.values()) == 24 and m.list_file("test").is_file()
    back = read_manifest(workdir / "dataset")
    assert back == m and len(back.items) == 24 and back.data_root == str((workdir / "data").resolve())
    assert "items" not in m.to_dict() and json.dumps(m.to_dict())


def test_ingest_writes_the_data_folder_then_split_reads_it(workdir, tmp_path_factory):
    """`ingest()` brings a Roboflow export in (relative paths are the project's), returns the report, and `split()`
    reads what it wrote; hard errors in the source raise IngestFailed with the report, nothing written."""
    from tests import ingest_exports as X

    from pfp_mlops.services.ingest import IngestFailed

    src = X.roboflow_yolo(tmp_path_factory.mktemp("rf"), n=6, imgsz=32)
    project = Project.open(workdir, overrides={"split.allow_missing_classes": True, "train.imgsz": 32})
    rep = project.ingest(src, out="data")
    assert rep.ok and rep.format == "roboflow" and rep.link_mode == "hardlink"
    assert (workdir / "data" / "ingest_report.json").is_file() and (workdir / "data" / "classes.yaml").is_file()
    project = Project.open(workdir, overrides={"split.allow_missing_classes": True,
                                               "data.classes_file": "data/classes.yaml"})
    m = project.split()
    assert sum(m.counts.values()) == rep.counts["images"]
    bad = next((src / "train" / "labels").iterdir())
    broken = tmp_path_factory.mktemp("bad") / "rf"
    import shutil
    shutil.copytree(src, broken)
    (broken / "train" / "labels" / bad.name).write_text("0 0.5 0.5\n")
    with pytest.raises(IngestFailed) as e:
        project.ingest(broken, out="data2")
    assert e.value.decision.ok is False and "label_syntax" in e.value.decision.errors
    assert not (workdir / "data2").exists()


def test_gate_refusals_become_values():
    """GateFailed with a Decision → Refused; Inconclusive → Refused(inconclusive); the validate/regression results a
    refusal carries are returned as they are; other errors propagate."""
    d = Decision("register", False, ["test mAP50 0.1 < minimum 0.5"])
    r = as_outcome("register", lambda: (_ for _ in ()).throw(GateFailed("not registered", decision=d)))
    assert r == Refused("register", d, "not registered") and r.reasons == d.reasons
    guard = as_outcome("validate", lambda: (_ for _ in ()).throw(GateFailed("trained on another split",
                                                                        details={"version": 2})))
    assert isinstance(guard, Refused) and guard.decision.verdict == "refused" and guard.decision.metrics == {
        "version": 2}
    inc = as_outcome("validate", lambda: (_ for _ in ()).throw(Inconclusive("can't tell")))
    assert inc.inconclusive and inc.decision.verdict == "inconclusive"
    rejected = _validate("rejected", False, "reject")
    assert as_outcome("validate", lambda: (_ for _ in ()).throw(GateFailed("x", decision=rejected))) is rejected
    rolled = RegressionResult("m", 3, 2, Decision("regression", False, ["worse"]), "rolled_back")
    assert as_outcome("watch", lambda: (_ for _ in ()).throw(RegressionRolledBack("x", result=rolled))) is rolled
    with pytest.raises(ConcurrentPromotion):
        as_outcome("validate", lambda: (_ for _ in ()).throw(ConcurrentPromotion("moved")))


@pytest.mark.parametrize(("result", "code"), [
    (_validate("promoted", True, "promote"), 0),
    (_validate("nothing", True, None), 0),
    (_validate("rejected", False, "reject"), 10),
    (_validate("inconclusive", False, "inconclusive"), 11),
    (Refused("promote", Decision("promote", False, ["low"]), "not promoted"), 10),
    (Refused("validate", Decision("validate", False, ["?"]), "?", inconclusive=True), 11),
    (RegressionResult("m", 3, 2, Decision("regression", False, ["worse"]), "rolled_back"), 13),
    (RegressionResult("m", 3, 2, Decision("regression", True, ["fine"]), "kept"), 0),
    (PipelineResult([StepOutcome("validate", "gate", 1.0, "rejected", 10)], 10, 1.0), 10),
])
def test_outcomes_map_to_the_cli_exit_codes(result, code):
    """The steps scripts exit with the code `pfp` gives for the same outcome, from the one table."""
    assert exit_code_of_outcome(result) == code
    assert (outcome_error(result) is None) == (code == 0 or isinstance(result, PipelineResult))


def test_status_report_keeps_unknown_fields():
    """A field the status service adds later is kept, not an error."""
    s = StatusReport.from_dict({"model": "m", "tracking_uri": "sqlite://", "versions": [], "aliases": {"production": 2},
                                "drift": [], "pending": ["x"]})
    assert s.alias("production") == 2 and s.alias("staging") is None and s.other == {"pending": ["x"]}


def test_lifecycle_reports_and_refusals_on_the_in_memory_registry(workdir):
    """With an injected registry (no MLflow): status, history, nothing-to-do outcomes, and a refusal returned as a
    value by the real promote service; a lost race or an unknown version stays an exception."""
    from pfp_mlops.adapters.memory_registry import MemoryRegistry
    from pfp_mlops.domain.errors import NotFoundError

    reg = MemoryRegistry(workdir / "memreg")
    project = Project.open(workdir, registry=reg)
    assert project.status().versions == [] and project.history() == []
    with pytest.raises(NotFoundError):
        project.validate()
    reg.ensure_model("pfp-detector")
    v1 = reg.register("pfp-detector", "runs:/r1/model", "r1", {"stage": "rejected"})
    assert project.validate().action == "nothing" and project.regression_watch().action == "nothing"
    refused = project.promote(version=v1)
    assert isinstance(refused, Refused) and "was rejected" in refused.message and exit_code_of_outcome(refused) == 10
    status = project.status()
    assert [v["stage"] for v in status.versions] == ["rejected"] and status.alias("production") is None
    with pytest.raises(NotFoundError):
        project.promote(version=9)
