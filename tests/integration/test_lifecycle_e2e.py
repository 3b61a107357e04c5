"""End to end on a real (tiny) YOLO training and a real SQLite MLflow registry, through the `pfp` entry point.

One scenario in order, sharing one project folder: a weak model becomes the first production model, a stronger
one replaces it, an equal challenger is rejected, rollbacks restore earlier versions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers import client, pfp, pfp_json, write_config
from tests.reliability import tiny_project, use_training
from tests.webhook import loopback_webhook

from pfp_mlops.domain.gates import leaked_test_items

pytestmark = pytest.mark.slow
MODEL = "pfp-detector"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    """A copy of the session's trained TINY project (tests/reliability.py tiny_trained: git repository with
    strong.yaml committed, demo-data, split, a 1-epoch and a 20-epoch training); nothing registered yet."""
    root = tiny_project(tmp_path_factory, "lifecycle")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("PFP_HOME", str(root / ".pfp"))
    # one Optuna study per config (tiny_trained trained `weak` and `strong`); strong.yaml is the committed file
    cfg = {"strong": write_config(root / "strong.yaml", train__search__study_name="strong"),
           "weak": write_config(root / "weak.yaml", train__epochs=1, train__search__study_name="weak"),
           "strict": write_config(root / "strict.yaml", train__epochs=1, gates__register__min_map50=0.5,
                                  train__search__study_name="strict"),
           # same assignment, other split config: another fingerprint, no leakage
           "relaxed": write_config(root / "relaxed.yaml", split__allow_missing_classes=True),
           # another seed: items move between splits, so test images reach earlier models' training sets
           "reseeded": write_config(root / "reseeded.yaml", split__seed=7, split__allow_missing_classes=True)}
    assert subprocess.run(["git", "status", "--porcelain", "strong.yaml"], capture_output=True, text=True,
                          check=True).stdout == "", "strong.yaml differs from the commit the trainings ran on"
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
    use_training(root, "weak")  # `pfp train` of 1 epoch (tiny_trained), as strict.yaml would train it
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
    info = use_training(root, "strong")  # `pfp train --config strong.yaml` (tiny_trained)
    assert info["epochs"] == 20 and Path(info["weights"]).is_file()
    manifest = json.loads((root / "dataset" / "split_manifest.json").read_text())
    assert info["split_fingerprint"] == manifest["fingerprint"]
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
    alert = json.loads((root / ".pfp" / "alerts.jsonl").read_text().splitlines()[-1])
    assert alert["event"] == "rejection" and alert["challenger"] == 3 and alert["champion"] == 2


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


# --- lifecycle safety (issue 4): lineage, runtime checks, regression watch, races, same-split guard, leakage ---


def test_every_version_carries_lineage(project):
    """Split fingerprints, git commit + dirty flag, training run, evaluation fingerprint, runtime versions (CUDA
    included), who registered it, and the training split's manifest, stored with the training run."""
    root, _ = project
    t = tags(2)
    split_fp = json.loads((root / "dataset" / "split_manifest.json").read_text())["fingerprint"]
    assert t["split_fingerprint"] == t["training_split_fingerprint"] == split_fp
    assert len(t["git_commit"]) == 40 and t["git_dirty"] in ("true", "false")
    assert t["training_git_commit"] == t["git_commit"]
    run = client().get_run(t["training_run_id"])
    assert run.info.run_id == t["training_run_id"]
    assert t["eval_fingerprint"] and t["registered_by"]
    assert {"runtime.python", "runtime.torch", "runtime.ultralytics", "runtime.cuda"} <= set(t)
    assert t["runtime_check"] == "passed"
    local = client().download_artifacts(t["training_run_id"], "split/split_manifest.json", str(root / "dl"))
    stored = json.loads(Path(local).read_text())
    assert stored["fingerprint"] == split_fp and len(stored["items"]) == 100


def test_data_version_from_training_info_becomes_a_tag(project, monkeypatch):
    """A `data_version` in training_info.json (the DVC hash) is copied to the version's `data_version` tag.

    Runs the register service up to the registry call only (the rest is covered above): the tags it would set."""
    root, cfg = project
    from pfp_mlops.adapters import mlflow_registry

    info_path = root / "runs" / "training_info.json"
    original = info_path.read_text()
    info_path.write_text(json.dumps({**json.loads(original), "data_version": "md5:0123abcd.dir"}))
    seen = {}

    def capture(self, name, model_uri, run_id, version_tags):
        seen.update(version_tags)
        raise KeyboardInterrupt  # stop before anything is registered

    monkeypatch.setattr(mlflow_registry.Registry, "register", capture)
    try:
        r = pfp("register", "--config", str(cfg["strong"]))
    finally:
        info_path.write_text(original)
    assert r.exit_code == 130
    assert seen["data_version"] == "md5:0123abcd.dir"
    assert len(client().search_model_versions(f"name = '{MODEL}'")) == 3


def test_register_refuses_a_runtime_production_cannot_run(project, monkeypatch):
    """PFP_PRODUCTION_RUNTIME excluding the installed torch: exit 10, each mismatch listed, no version."""
    root, cfg = project
    import torch

    monkeypatch.setenv("PFP_PRODUCTION_RUNTIME", "torch<2.6; ultralytics>=8.0")
    code, out = pfp_json("register", "--config", str(cfg["strong"]))
    assert code == 10
    assert f"torch {torch.__version__.split('+')[0]} does not satisfy <2.6" in out["error"]["message"]
    assert "ultralytics" not in out["error"]["message"]
    assert len(client().search_model_versions(f"name = '{MODEL}'")) == 3


def test_register_holds_the_declared_runtime_against_the_fresh_process_versions(project, monkeypatch):
    """CUDA is only known to the process that loaded the model: a declared CUDA no machine has is refused after
    the fresh-process check (exit 10, the mismatch named with the CUDA seen there), and no version is created."""
    monkeypatch.setenv("PFP_PRODUCTION_RUNTIME", "cuda==0.0")
    root, cfg = project
    code, out = pfp_json("register", "--config", str(cfg["strong"]))
    assert code == 10, out
    import torch

    seen = str(torch.version.cuda) if torch.version.cuda and torch.cuda.is_available() else "none"
    assert f"cuda {seen} does not satisfy ==0.0" in out["error"]["message"]
    assert len(client().search_model_versions(f"name = '{MODEL}'")) == 3


def test_register_refuses_a_model_that_does_not_load_in_a_fresh_process(project, monkeypatch):
    """The logged artifact is made unloadable: the fresh-process check fails, exit 10, no version."""
    root, cfg = project
    import mlflow

    from pfp_mlops.adapters import packaging

    real = packaging.log_pyfunc

    def log_then_corrupt(weights, **kwargs):
        uri = real(weights, **kwargs)
        location = mlflow.get_logged_model(uri.rsplit("/", 1)[-1]).artifact_location
        pts = list(Path(location.removeprefix("file://")).rglob("*.pt"))
        assert pts
        for pt in pts:
            pt.write_bytes(b"this is not a torch checkpoint")
        return uri

    monkeypatch.setattr(packaging, "log_pyfunc", log_then_corrupt)
    code, out = pfp_json("register", "--config", str(cfg["strong"]))
    assert code == 10, out
    assert "does not load and predict in a fresh process" in out["error"]["message"]
    assert len(client().search_model_versions(f"name = '{MODEL}'")) == 3
    refused = [e for e in pfp_json("history", "--limit", "1", "--config", str(cfg["strong"]))[1]["result"]]
    assert refused[0]["action"] == "register" and refused[0]["outcome"] == "refused_runtime"


def test_check_env_offline_fails_cleanly(project, monkeypatch):
    """`register --check-env` with no reachable package index: one line, exit 3 (2 where no pyenv is installed
    for the virtualenv manager), no version. Every proxy points at a closed loopback port: no network is used."""
    root, cfg = project
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    r = pfp("register", "--check-env", "--env-manager", "virtualenv", "--config", str(cfg["strong"]))
    has_pyenv = shutil.which("pyenv") or (Path.home() / ".pyenv" / "bin" / "pyenv").exists()
    assert r.exit_code == (3 if has_pyenv else 2), r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("pfp: error:")]
    assert len(errors) == 1 and errors[0].startswith("pfp: error: --check-env:") and "Traceback" not in r.stderr
    assert len(client().search_model_versions(f"name = '{MODEL}'")) == 3


def test_regression_watch_rolls_back_and_alerts(project, monkeypatch):
    """Production worse than the previous production on current data: automatic rollback, alert POSTed to a real
    HTTP server on loopback, exit 13; the demoted version is tagged rolled_back."""
    root, cfg = project
    code, out = pfp_json("rollback", "--to-version", "1", "--reason", "test: weak model back",
                         "--config", str(cfg["strong"]))
    assert code == 0, out
    assert any("loads and predicts in a fresh process" in x for x in out["result"]["reasons"])
    assert alias("production") == 1
    # a configured tolerance that allows any drop keeps production; `--tolerance` overrides it for one call
    lenient = write_config(root / "lenient.yaml", train__search__study_name="strong",
                           gates__validate__regression_tolerance=1.0)
    code, out = pfp_json("validate", "--against", "previous", "--config", str(lenient))
    assert code == 0 and out["result"]["action"] == "kept", out
    assert alias("production") == 1
    with loopback_webhook() as hook:
        monkeypatch.setenv("PFP_ALERT_WEBHOOK_URL", hook.url)
        code, out = pfp_json("validate", "--against", "previous", "--tolerance", "0", "--config", str(lenient))
    assert code == 13, out
    assert out["result"]["action"] == "rolled_back" and out["result"]["previous"] == 2
    assert out["result"]["rollback"]["alert"]["webhook"] == "sent"
    assert alias("production") == 2
    assert tags(2)["stage"] == "production" and tags(1)["stage"] == "rolled_back"
    assert hook.received[-1]["event"] == "regression" and hook.received[-1]["to_version"] == 2
    assert "rolled back from v1 to v2" in hook.received[-1]["text"]
    code, out = pfp_json("validate", "--against", "previous", "--config", str(cfg["strong"]))
    assert code == 0 and out["result"]["action"] == "kept"  # v2 is not worse than v1
    history = pfp_json("history", "--limit", "3", "--config", str(cfg["strong"]))[1]["result"]
    assert [(e["action"], e["outcome"]) for e in history] == [("validate", "kept"), ("rollback", "rolled_back"),
                                                              ("validate", "regression")]


RACER = """
import atexit, sys, time
from pathlib import Path
from pfp_mlops.adapters.mlflow_registry import Registry

barrier, me = Path(sys.argv[1]), sys.argv[2]
real, first = Registry.move_alias, [True]
# `<me>.exit` when this process ends: a racer that lost before its first alias move (the other's pending ledger
# entry refused it, exit 12) never reaches the barrier, and the other must not wait out the deadline for it.
atexit.register(lambda: (barrier / (me + ".exit")).touch())

def move_after_barrier(self, *args, **kwargs):
    # both processes have decided; their first alias move starts at the same moment (or the other one has ended)
    if first.pop() if first else False:
        (barrier / me).touch()
        deadline = time.time() + 120
        while len({f.name.split(".")[0] for f in barrier.iterdir()}) < 2 and time.time() < deadline:
            time.sleep(0.005)
    return real(self, *args, **kwargs)

Registry.move_alias = move_after_barrier
sys.argv = ["pfp", *sys.argv[3:]]
from pfp_mlops.cli.app import main
main()
"""


def test_two_validations_at_once_promote_exactly_once(project):
    """Two `pfp validate` processes on the same challenger: one promotes, the other exits 12 and changes nothing."""
    root, cfg = project
    assert pfp_json("rollback", "--to-version", "1", "--config", str(cfg["strong"]))[0] == 0
    code, out = pfp_json("promote", "--version", "2", "--config", str(cfg["strong"]))
    assert code == 0, out
    promoted_before = _count("validate", "promoted")
    barrier = root / "race-barrier"
    barrier.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(barrier), f"p{i}", "validate", "--config",
                               str(cfg["strong"])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ)) for i in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert sorted(code for code, _ in results) == [0, 12], results
    loser = next(err for code, err in results if code == 12)
    assert "pfp: error:" in loser and "nothing changed" in loser and "Traceback" not in loser
    assert alias("production") == 2 and alias("staging") is None
    assert tags(2)["stage"] == "production" and tags(1)["stage"] == "archived"
    assert _count("validate", "promoted") == promoted_before + 1


def _count(action: str, outcome: str) -> int:
    entries = pfp_json("history", "--limit", "1000")[1]["result"]
    return sum(1 for e in entries if e["action"] == action and e["outcome"] == outcome)


def test_split_mismatch_is_refused_unless_allowed_and_recorded(project):
    """After a re-split, a model trained on the old split is refused (both fingerprints named, what to run);
    `--allow-split-mismatch` lets it through and the ledger records the override."""
    root, cfg = project
    old_fp = tags(1)["training_split_fingerprint"]
    assert pfp("split", "--config", str(cfg["relaxed"])).exit_code == 0
    new_fp = json.loads((root / "dataset" / "split_manifest.json").read_text())["fingerprint"]
    assert new_fp != old_fp
    r = pfp("promote", "--version", "1", "--config", str(cfg["relaxed"]))
    assert r.exit_code == 10 and r.stderr.count("\n") == 1
    assert old_fp in r.stderr and new_fp in r.stderr and "pfp train" in r.stderr and "pfp split" in r.stderr
    assert alias("staging") is None and tags(1)["stage"] == "archived"
    code, out = pfp_json("promote", "--version", "1", "--allow-split-mismatch", "--config", str(cfg["relaxed"]))
    assert code == 0, out
    assert alias("staging") == 1
    entry = pfp_json("history", "--limit", "1", "--config", str(cfg["relaxed"]))[1]["result"][0]
    assert entry["action"] == "promote" and entry["allow_split_mismatch"] == "true"
    assert old_fp in entry["guard"] and new_fp in entry["guard"]
    r = pfp("validate", "--config", str(cfg["relaxed"]))
    assert r.exit_code == 10 and "--allow-split-mismatch" in r.stderr
    assert alias("staging") == 1 and alias("production") == 2


def test_leaked_test_split_is_refused_with_the_count(project):
    """With another split seed, current test images were in the models' training sets: validate refuses the
    comparison as leaked, names the count, and changes nothing; then the original split is restored."""
    root, cfg = project
    assert pfp("split", "--config", str(cfg["reseeded"])).exit_code == 0
    manifest = json.loads((root / "dataset" / "split_manifest.json").read_text())
    trained = json.loads(Path(client().download_artifacts(tags(2)["training_run_id"], "split/split_manifest.json",
                                                          str(root / "dl2"))).read_text())["items"]
    expected = len(leaked_test_items(trained, manifest["items"]))
    assert expected > 0
    code, out = pfp_json("validate", "--allow-split-mismatch", "--config", str(cfg["reseeded"]))
    assert code == 10, out
    assert "leaked" in out["error"]["message"]
    assert f"{expected} of the current {manifest['counts']['test']} test images" in out["error"]["message"]
    assert alias("staging") == 1 and alias("production") == 2 and tags(1)["stage"] == "staging"
    assert pfp("split", "--config", str(cfg["strong"])).exit_code == 0
    assert json.loads((root / "dataset" / "split_manifest.json").read_text())["fingerprint"] == \
        tags(2)["training_split_fingerprint"]
