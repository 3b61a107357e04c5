"""End to end on a real (tiny) YOLO training and a real SQLite MLflow registry, through the `pfp` entry point.

One scenario in order, sharing one project folder: a weak model becomes the first production model, a stronger
one replaces it, an equal challenger is rejected, rollbacks restore earlier versions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers import client, pfp, pfp_json, write_config

pytestmark = pytest.mark.slow
MODEL = "pfp-detector"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("lifecycle")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("PFP_HOME", str(root / ".pfp"))
    cfg = {"strong": write_config(root / "strong.yaml"),
           "weak": write_config(root / "weak.yaml", train__epochs=1),
           "strict": write_config(root / "strict.yaml", train__epochs=1, gates__register__min_map50=0.5)}
    r = pfp("demo-data", "--config", str(cfg["strong"]))
    assert r.exit_code == 0, r.output
    r = pfp("split", "--config", str(cfg["strong"]))
    assert r.exit_code == 0, r.output
    yield root, cfg
    mp.undo()


def tags(version: int) -> dict[str, str]:
    return client().get_model_version(MODEL, str(version)).tags


def alias(name: str) -> int | None:
    try:
        return int(client().get_model_version_by_alias(MODEL, name).version)
    except Exception:
        return None


def test_split_wrote_lists_yaml_and_manifest(project):
    """`pfp split` writes the three lists, data.yaml and a manifest whose counts add up."""
    root, _ = project
    manifest = json.loads((root / "dataset" / "split_manifest.json").read_text())
    assert sum(manifest["counts"].values()) == 100
    for s in ("train", "valid", "test"):
        lines = (root / "dataset" / f"{s}.txt").read_text().split()
        assert len(lines) == manifest["counts"][s]
        assert all(Path(p).is_file() for p in lines)
    assert (root / "dataset" / "data.yaml").is_file()


def test_register_refuses_under_minimum_score_and_creates_no_version(project):
    """A model under the minimum TEST mAP50 exits 10 and leaves no registered version."""
    root, cfg = project
    assert pfp("train", "--config", str(cfg["strict"])).exit_code == 0
    code, out = pfp_json("register", "--config", str(cfg["strict"]))
    assert code == 10
    assert out["ok"] is False and "not registered" in out["error"]["message"]
    assert client().search_model_versions(f"name = '{MODEL}'") == []


def test_first_model_becomes_production(project):
    """With no production yet, a staged model meeting the absolute minimum becomes production."""
    root, cfg = project
    code, out = pfp_json("register", "--config", str(cfg["weak"]))
    assert code == 0, out
    assert out["result"]["version"] == 1
    assert tags(1)["stage"] == "candidate"
    assert tags(1)["runtime_check"] == "passed"
    assert tags(1)["split_fingerprint"]
    code, out = pfp_json("promote", "--config", str(cfg["weak"]))
    assert code == 0, out
    assert alias("staging") == 1 and tags(1)["stage"] == "staging"
    code, out = pfp_json("validate", "--config", str(cfg["weak"]))
    assert code == 0, out
    assert out["result"]["action"] == "promoted"
    assert alias("production") == 1 and alias("staging") is None
    assert client().get_model_version(MODEL, "1").tags["stage"] == "production"


def test_better_challenger_replaces_production(project):
    """A challenger ≥ 1 % better on the same test split takes production; the old champion is archived."""
    root, cfg = project
    r = pfp("train", "--config", str(cfg["strong"]))
    assert r.exit_code == 0, r.output
    info = json.loads((root / "runs" / "training_info.json").read_text())
    assert info["epochs"] == 20 and Path(info["weights"]).is_file()
    assert info["split_fingerprint"] == json.loads((root / "dataset" / "split_manifest.json").read_text())["fingerprint"]
    code, out = pfp_json("register", "--config", str(cfg["strong"]))
    assert code == 0, out
    assert out["result"]["evaluation"]["map50"] > 0.05
    assert pfp("promote", "--config", str(cfg["strong"])).exit_code == 0
    code, out = pfp_json("validate", "--config", str(cfg["strong"]))
    assert code == 0, out
    assert out["result"]["action"] == "promoted"
    assert out["result"]["champion_eval"]["split_fingerprint"] == out["result"]["challenger_eval"]["split_fingerprint"]
    assert alias("production") == 2
    assert tags(2)["stage"] == "production" and tags(1)["stage"] == "archived"


def test_equal_challenger_is_rejected_and_production_unchanged(project):
    """The same weights registered again are not ≥ 1 % better: exit 10, tagged rejected, production unchanged."""
    root, cfg = project
    assert pfp_json("register", "--config", str(cfg["strong"]))[0] == 0
    assert pfp("promote", "--config", str(cfg["strong"])).exit_code == 0
    code, out = pfp_json("validate", "--config", str(cfg["strong"]))
    assert code == 10
    assert out["result"]["action"] == "rejected"
    assert "not better" in " ".join(out["result"]["decision"]["reasons"])
    assert alias("production") == 2 and alias("staging") is None
    assert tags(3)["stage"] == "rejected"


def test_production_model_loads_and_predicts_in_a_fresh_process(project):
    """`mlflow.pyfunc.load_model('models:/<name>@production')` works from a new interpreter and finds objects."""
    root, _ = project
    images = (root / "dataset" / "test.txt").read_text().split()[:5]
    script = (
        "import sys, mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri('sqlite:///{root / '.pfp' / 'mlflow.db'}')\n"
        f"m = mlflow.pyfunc.load_model('models:/{MODEL}@production')\n"
        "out = m.predict(pd.DataFrame({'image': sys.argv[1:]}))\n"
        "print(out.to_json(orient='records'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, *images], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rows, "the production model found nothing on 5 test images"
    assert set(rows[0]) == {"image", "class_id", "class_name", "confidence", "x1", "y1", "x2", "y2"}
    assert {r["class_name"] for r in rows} <= {"rock", "paper", "scissors"}


def test_rollback_dry_run_changes_nothing(project):
    """`--dry-run` names the target and leaves aliases and tags as they were."""
    root, cfg = project
    before = (alias("production"), tags(1)["stage"], tags(2)["stage"])
    code, out = pfp_json("rollback", "--dry-run", "--config", str(cfg["strong"]))
    assert code == 0, out
    assert out["result"]["to_version"] == 1 and out["result"]["dry_run"] is True
    assert (alias("production"), tags(1)["stage"], tags(2)["stage"]) == before


def test_rollback_to_previous_then_to_named_version(project):
    """Rollback goes to the previous production (from the ledger), then `--to-version` returns to v2."""
    root, cfg = project
    code, out = pfp_json("rollback", "--config", str(cfg["strong"]))
    assert code == 0, out
    assert alias("production") == 1
    assert tags(1)["stage"] == "production" and tags(2)["stage"] == "rolled_back"
    alerts = (root / ".pfp" / "alerts.jsonl").read_text().splitlines()
    assert json.loads(alerts[-1])["to_version"] == 1
    code, out = pfp_json("rollback", "--to-version", "2", "--config", str(cfg["strong"]))
    assert code == 0, out
    assert alias("production") == 2 and tags(1)["stage"] == "rolled_back"


def test_rollback_refuses_rejected_and_unknown_versions(project):
    """A rejected version needs --force (exit 2 without); an unknown version exits 2; nothing moves."""
    root, cfg = project
    r = pfp("rollback", "--to-version", "3", "--config", str(cfg["strong"]))
    assert r.exit_code == 2 and "--force" in r.stderr
    r = pfp("rollback", "--to-version", "99", "--config", str(cfg["strong"]))
    assert r.exit_code == 2 and "not found" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert alias("production") == 2


def test_status_reports_aliases_stages_and_metrics(project):
    """`pfp status --json` lists every version with its aliases, stage and test mAP50, and no drift."""
    root, cfg = project
    code, out = pfp_json("status", "--config", str(cfg["strong"]))
    assert code == 0
    rows = {v["version"]: v for v in out["result"]["versions"]}
    assert set(rows) == {1, 2, 3}
    assert rows[2]["aliases"] == ["production"] and rows[2]["stage"] == "production"
    assert rows[3]["stage"] == "rejected"
    assert rows[2]["map50"] > rows[1]["map50"]
    assert out["result"]["drift"] == []
