"""One contract for every registry (pfp_mlops.ports.RegistryPort): the embedded SQLite MLflow store and the
in-memory twin must behave the same, so a service tested on one behaves the same on the other.

The SQLite store is migrated once per session and copied for each test (MLflow's own suite does the same).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pfp_mlops.adapters.memory_registry import MemoryRegistry
from pfp_mlops.domain.errors import ConcurrentPromotion, InfraError, NotFoundError, UserError
from pfp_mlops.ports import RegistryPort

M = "contract-model"


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("contract-store") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture(params=["memory", pytest.param("sqlite", marks=pytest.mark.slow)])
def reg(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RegistryPort:
    if request.param == "memory":
        return MemoryRegistry(tmp_path / "memreg")
    from pfp_mlops.adapters.mlflow_registry import Registry
    from pfp_mlops.settings import Settings

    home = tmp_path / ".pfp"
    home.mkdir()
    shutil.copyfile(request.getfixturevalue("migrated_sqlite"), home / "mlflow.db")
    monkeypatch.setenv("PFP_HOME", str(home))
    return Registry(Settings(_env_file=None))


def _model_dir(tmp_path: Path) -> Path:
    src = tmp_path / "model-src"
    src.mkdir(exist_ok=True)
    (src / "weights.pt").write_bytes(b"not really weights")
    return src


def _three(reg: RegistryPort, tmp_path: Path) -> list[int]:
    src = _model_dir(tmp_path)
    return [reg.register(M, str(src), None, {"stage": "candidate", "n": str(i)}) for i in range(3)]


def test_it_implements_the_port(reg):
    assert isinstance(reg, RegistryPort)


def test_versions_are_ints_from_one_with_their_tags(reg, tmp_path):
    assert not reg.model_exists(M)
    assert reg.aliases(M) == {} and reg.alias_version(M, "production") is None
    with pytest.raises(NotFoundError):
        reg.versions(M)
    assert _three(reg, tmp_path) == [1, 2, 3]
    assert reg.model_exists(M)
    v2 = reg.version(M, "2")
    assert v2.version == 2 and isinstance(v2.version, int) and v2.stage == "candidate" and v2.tags["n"] == "1"
    assert [v.version for v in reg.versions(M)] == [1, 2, 3]
    reg.ensure_model(M)  # idempotent
    assert len(reg.versions(M)) == 3


@pytest.mark.parametrize("bad", ["x", 0, "-1"])
def test_a_malformed_version_is_a_user_error(reg, tmp_path, bad):
    _three(reg, tmp_path)
    with pytest.raises(UserError):
        reg.version(M, bad)


def test_an_unknown_version_is_not_found(reg, tmp_path):
    _three(reg, tmp_path)
    with pytest.raises(NotFoundError):
        reg.version(M, 99)


def test_move_alias_is_compare_and_set(reg, tmp_path):
    """A stale expected holder raises ConcurrentPromotion and changes nothing; None deletes the alias."""
    _three(reg, tmp_path)
    reg.move_alias(M, "production", 1, expected=None)
    with pytest.raises(ConcurrentPromotion, match="nothing changed"):
        reg.move_alias(M, "production", 3, expected=2)
    with pytest.raises(ConcurrentPromotion):
        reg.move_alias(M, "production", 3, expected=None)
    assert reg.alias_version(M, "production") == 1
    reg.move_alias(M, "production", 3, expected=1)
    reg.move_alias(M, "staging", 2, expected=None)
    assert reg.aliases(M) == {"production": 3, "staging": 2}
    by_version = {v.version: v.aliases for v in reg.versions(M)}
    assert by_version == {1: [], 2: ["staging"], 3: ["production"]}
    reg.move_alias(M, "staging", None, expected=2)
    assert reg.aliases(M) == {"production": 3}
    assert reg.model_tags(M)["pfp.epoch.production"] == "2"


def test_tags_are_strings(reg, tmp_path):
    _three(reg, tmp_path)
    reg.set_tags(M, 1, {"stage": "archived", "n": 7, "d": {"a": 1}})
    t = reg.version(M, 1).tags
    assert t["stage"] == "archived" and t["n"] == "7" and t["d"] == '{"a": 1}'
    assert reg.version(M, 1).stage == "archived"


def _entry(action: str, to: int, **kw) -> dict:
    return {"action": action, "model": M, "to_version": to, "from_version": None, "metrics": {"map50": 0.5},
            **kw}


def test_the_ledger_keeps_order_status_and_metrics(reg):
    ids = [reg.append_ledger(_entry("promote", i, seq=f"{i:03d}")) for i in (1, 2, 3)]
    pending = reg.append_ledger(_entry("validate", 3, seq="004"), status="pending")
    reg.append_ledger({**_entry("promote", 9), "model": "another-model"})
    entries = reg.ledger(M)
    assert [e["run_id"] for e in entries] == [*ids, pending]
    assert [e["status"] for e in entries] == ["complete"] * 3 + ["pending"]
    assert entries[0]["to_version"] == "1" and entries[0]["metrics"]["map50"] == pytest.approx(0.5)
    assert "from_version" not in entries[0]  # None fields are not stored
    assert [e["to_version"] for e in reg.ledger(M, limit=2)] == ["3", "3"]  # the newest two, oldest first
    assert [e["run_id"] for e in reg.ledger(M, status="pending")] == [pending]
    reg.finish_ledger(pending, "complete")
    assert reg.ledger(M)[-1]["status"] == "complete"


def test_an_aborted_entry_leaves_the_ledger(reg):
    keep = reg.append_ledger(_entry("promote", 1, seq="001"))
    gone = reg.append_ledger(_entry("promote", 2, seq="002"), status="pending")
    reg.finish_ledger(gone, "aborted")
    assert [e["run_id"] for e in reg.ledger(M)] == [keep]
    with pytest.raises(UserError):
        reg.append_ledger(_entry("promote", 3), status="aborted")  # type: ignore[arg-type]


def test_annotate_adds_facts_to_an_entry(reg):
    rid = reg.append_ledger(_entry("validate", 1))
    reg.annotate_ledger(rid, {"serving": "confirmed", "served_version": 1})
    e = reg.ledger(M)[-1]
    assert e["serving"] == "confirmed" and e["served_version"] == "1" and e["status"] == "complete"
    with pytest.raises(UserError):
        reg.annotate_ledger(rid, {"status": "pending"})
    with pytest.raises(NotFoundError):
        reg.annotate_ledger("0" * 32, {"x": "y"})


def test_evidence_runs_and_artifacts_round_trip(reg, tmp_path):
    rid = reg.create_finished_run("contract-evidence", "ev", tags={"pfp.model": M, "pfp.n": 3},
                                  metrics={"delta": 0.25, "nan": float("nan")})
    assert reg.run_tags(rid)["pfp.n"] == "3"
    f = tmp_path / "decision.json"
    f.write_text('{"ok": true}')
    uri = reg.log_run_artifact(rid, f, "validate")
    assert uri == f"runs:/{rid}/validate/decision.json"
    got = reg.download(uri, tmp_path / "dl")
    assert got.is_file() and got.read_text() == '{"ok": true}'
    with pytest.raises((NotFoundError, InfraError)):
        reg.download(f"runs:/{rid}/validate/missing.json", tmp_path / "dl2")
    with pytest.raises(NotFoundError):
        reg.run_tags("0" * 32)
    assert reg.experiment_id("contract-evidence") == reg.experiment_id("contract-evidence")


def test_a_version_downloads_its_files(reg, tmp_path):
    _three(reg, tmp_path)
    got = reg.download(f"models:/{M}/2", tmp_path / "models")
    assert [p.name for p in got.glob("**/*.pt")] == ["weights.pt"]
