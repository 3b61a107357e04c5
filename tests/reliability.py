"""Shared by the reliability suites (issue 6): one tiny trained project per session, a killable MLflow server, a
subprocess harness that pauses pfp at a named function so a test can inject a fault at an exact point, and
snapshots of files and registry state.

The trained project is read-only for the tests that use it: each test gets its own PFP_HOME (its own registry)
and its own copy of `training_info.json` pointing at a training run created in that registry.

Also here: `tiny_trained`, the TINY project (tests/helpers.py) trained once per session for the lifecycle, evaluation,
monitor and serve modules, each of which works on its own relocated copy (`tiny_project`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from local_stack import LOOPBACK, Service, _http_ok, _spawn, _venv_bin, _wait, free_port  # noqa: E402

MODEL = "pfp-detector"
# 40 images at 64 px, one epoch, one trial: the smallest training that yields a loadable model (~10 s CPU).
CFG: dict[str, Any] = {
    "demo": {"n_images": 40, "imgsz": 64, "seed": 0},
    "split": {"allow_missing_classes": True},
    "train": {"epochs": 1, "imgsz": 64, "batch": 8, "plots": False,
              "hyperparameters": {"warmup_epochs": 0, "mosaic": 0.0}, "search": {"n_trials": 1}},
    "evaluation": {"imgsz": 64, "batch": 16},
    "gates": {"register": {"min_map50": 0.0}, "promote": {"min_map50": 0.0}},
}
_TEMPLATE: dict[str, Path] = {}
_SERVER: dict[str, MlflowServer] = {}


def write_cfg(path: Path, **sections: Any) -> Path:
    cfg = json.loads(json.dumps(CFG))
    for k, v in sections.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@contextlib.contextmanager
def in_project(root: Path, home: Path | None = None, **env: str) -> Iterator[Path]:
    """chdir into `root` with PFP_HOME (default root/.pfp) and extra environment, restored afterwards."""
    saved_cwd = Path.cwd()
    env = {"PFP_HOME": str(home or root / ".pfp"), **env}
    saved = {k: os.environ.get(k) for k in env}
    os.chdir(root)
    os.environ.update(env)
    try:
        yield root
    finally:
        os.chdir(saved_cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def trained_template(tmp_path_factory) -> Path:
    """demo-data → split → train (in-process), once per session. Don't write into it."""
    if "root" in _TEMPLATE:
        return _TEMPLATE["root"]
    from tests.helpers import pfp

    root = tmp_path_factory.mktemp("trained-template")
    cfg = write_cfg(root / "cfg.yaml")
    with in_project(root):
        for step in ("demo-data", "split", "train"):
            r = pfp(step, "--config", str(cfg))
            assert r.exit_code == 0, (step, r.output)
    assert (root / "runs" / "training_info.json").is_file()
    _TEMPLATE["root"] = root
    return root


# --- one TINY project trained once per session, copied per module ----------------------------------------------------

TINY_TRAININGS = ("weak", "strong")  # train.epochs 1 and 20 (tests/helpers.py TINY), one Optuna study each
_TINY: dict[str, Path] = {}


def tiny_trained(tmp_path_factory) -> Path:
    """The set-up the lifecycle, evaluation, monitor and serve modules share (each used to repeat it, ~40 s of
    training apiece on 2 cores), run once per session through `pfp`: a git repository (strong.yaml committed),
    demo-data (100 images, 96 px) → split → `pfp train` twice on TINY, 1 epoch (`weak`) and 20 epochs (`strong`),
    each with its own study. Each training's outputs are kept as `<name>.pt` + `<name>_info.json` (its
    training_info.json pointing at `<name>.pt`); both training runs, with what they logged, are in the embedded
    store (.pfp/mlflow.db + artifacts, .pfp/optuna.db). Nothing is registered. Read-only: tests use a copy from
    `tiny_project`, so what one module registers, promotes or re-splits is never seen by another."""
    if "root" in _TINY:
        return _TINY["root"]
    from tests.helpers import pfp, write_config

    root = tmp_path_factory.mktemp("tiny-trained")
    cfg = {name: write_config(root / f"{name}.yaml", **({"train__epochs": 1} if name == "weak" else {}),
                              train__search={"n_trials": 1, "study_name": name}) for name in TINY_TRAININGS}
    git = ["git", "-c", "user.name=pfp-test", "-c", "user.email=pfp@test.invalid"]
    for argv in ([*git, "init", "-q"], [*git, "add", "strong.yaml"], [*git, "commit", "-q", "-m", "project"]):
        subprocess.run(argv, cwd=root, check=True)
    with in_project(root):
        for step in ("demo-data", "split"):
            r = pfp(step, "--config", str(cfg["strong"]))
            assert r.exit_code == 0, (step, r.output)
        for name in TINY_TRAININGS:
            r = pfp("train", "--config", str(cfg[name]))
            assert r.exit_code == 0, (name, r.output)
            info = json.loads((root / "runs" / "training_info.json").read_text())
            shutil.copyfile(info["weights"], root / f"{name}.pt")  # the next training writes runs/best.pt again
            info["weights"] = str(root / f"{name}.pt")
            (root / f"{name}_info.json").write_text(json.dumps(info, indent=2))
    (root / "runs" / "training_info.json").unlink()  # a copy starts with no training chosen: see use_training
    _TINY["root"] = root
    return root


def tiny_project(tmp_path_factory, name: str) -> Path:
    """A private copy of `tiny_trained` for one module (which then writes, registers and re-splits as it likes):
    every file copied (no links), and every absolute path of the template, in text files and in the SQLite stores
    (MLflow's artifact locations, Optuna's trial results), rewritten to the copy. The split fingerprint depends on
    relative image paths and contents only, so the copy's split is the split the trainings saw."""
    template = tiny_trained(tmp_path_factory)
    root = tmp_path_factory.mktemp(name)
    shutil.copytree(template, root, dirs_exist_ok=True)
    relocate(root, str(template.resolve()), str(root.resolve()))
    # MLflow caches each run's artifact repository by run id for the process; the copy has the template's run ids
    # at its own locations, so the cached ones (the template's, an earlier copy's) must not be used for it
    from mlflow.tracking._tracking_service import utils as tracking_utils

    tracking_utils._artifact_repos_cache.clear()
    return root


def use_training(root: Path, name: str) -> dict[str, Any]:
    """Make `<name>_info.json` the project's runs/training_info.json (what `pfp train` would have left); returns it."""
    text = (root / f"{name}_info.json").read_text()
    (root / "runs" / "training_info.json").write_text(text)
    return json.loads(text)


_TEXT_SUFFIXES = {".txt", ".json", ".jsonl", ".yaml", ".yml", ".csv"}  # never weights: pickles hold string lengths


def relocate(root: Path, old: str, new: str) -> None:
    """Replace the absolute path `old` by `new` in the text files (by suffix) and the SQLite databases (`*.db`, every
    text column) under `root`."""
    import sqlite3

    for p in root.rglob("*"):
        if not p.is_file() or ".git" in p.relative_to(root).parts:
            continue
        if p.suffix == ".db":
            con = sqlite3.connect(p)
            try:
                for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                    for _, col, typ, *_ in con.execute(f'PRAGMA table_info("{t}")').fetchall():
                        if not typ or any(k in typ.upper() for k in ("CHAR", "TEXT", "CLOB")):
                            con.execute(f'UPDATE "{t}" SET "{col}" = replace("{col}", ?, ?) '
                                        f'WHERE instr("{col}", ?) > 0', (old, new, old))
                con.commit()
            finally:
                con.close()
        elif p.suffix in _TEXT_SUFFIXES:
            data = p.read_bytes()
            if old.encode() in data:
                p.write_bytes(data.replace(old.encode(), new.encode()))


def training_info_for(template: Path, tracking_uri: str, dest: Path) -> Path:
    """A copy of the template's training_info.json whose run exists in `tracking_uri` (a new, finished run)."""
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    exp = c.get_experiment_by_name("pfp-training")
    # Like pfp's own rule for a configured SQLite store: artifacts beside the database, never ./mlruns of the cwd.
    loc = (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri() \
        if tracking_uri.startswith("sqlite:///") else None
    exp_id = exp.experiment_id if exp else c.create_experiment("pfp-training", artifact_location=loc)
    run = c.create_run(exp_id, tags={"mlflow.runName": "copied-training"})
    c.set_terminated(run.info.run_id, "FINISHED")
    info = json.loads((template / "runs" / "training_info.json").read_text())
    info["run_id"] = run.info.run_id
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(info))
    return dest


def sqlite_uri(home: Path) -> str:
    return f"sqlite:///{home.resolve() / 'mlflow.db'}"


# --- snapshots -----------------------------------------------------------------------------------------------------

def file_hashes(*folders: Path) -> dict[str, str]:
    out = {}
    for folder in folders:
        if not folder.exists():
            out[str(folder)] = "absent"
            continue
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def registry_state(tracking_uri: str, model: str = MODEL) -> dict[str, Any]:
    """Aliases, model tags, every version's tags, and the number of ledger entries: what a failed command must
    not change."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    c = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        rm = c.get_registered_model(model)
    except MlflowException:
        return {"model": None}
    versions = {int(v.version): dict(v.tags) for v in c.search_model_versions(f"name = '{model}'")}
    exp = c.get_experiment_by_name("pfp-lifecycle")
    ledger = len(c.search_runs([exp.experiment_id], max_results=5000)) if exp else 0
    return {"aliases": {a: int(v) for a, v in (rm.aliases or {}).items()}, "tags": dict(rm.tags or {}),
            "versions": versions, "ledger": ledger}


def aliases(tracking_uri: str, model: str = MODEL) -> dict[str, int]:
    return registry_state(tracking_uri, model).get("aliases") or {}


def stages(tracking_uri: str, model: str = MODEL) -> dict[int, str | None]:
    return {v: t.get("stage") for v, t in (registry_state(tracking_uri, model).get("versions") or {}).items()}


def consistent(tracking_uri: str, model: str = MODEL) -> bool:
    """The stage tags follow the aliases: exactly the alias holders are tagged production/staging."""
    st = registry_state(tracking_uri, model)
    al, tags = st["aliases"], st["versions"]
    for v, t in tags.items():
        want = "production" if al.get("production") == v else "staging" if al.get("staging") == v else None
        stage = t.get("stage")
        if want and stage != want:
            return False
        if not want and stage in ("production", "staging"):
            return False
    return True


# --- a subprocess harness: pause pfp at a named function ------------------------------------------------------------

HARNESS = r'''
import functools, importlib, os, sys, time
# PFP_HARNESS_PAUSE: "module:Attr.path:call_number:seconds", comma-separated. On that call of that function, print
# "HARNESS-MARK <attr> <n>" on stderr, sleep, then call through. The test watches for the mark and injects a fault.
for spec in filter(None, os.environ.get("PFP_HARNESS_PAUSE", "").split(",")):
    mod_name, attr, nth, secs = spec.split(":")
    mod = importlib.import_module(mod_name)
    owner, name = mod, attr
    if "." in attr:
        cls, name = attr.split(".")
        owner = getattr(mod, cls)
    orig = getattr(owner, name)
    def make(orig, attr, nth, secs):
        count = [0]
        @functools.wraps(orig)
        def wrapper(*a, **k):
            count[0] += 1
            if count[0] == nth or nth == 0:
                sys.stderr.write(f"HARNESS-MARK {attr} {count[0]}\n"); sys.stderr.flush()
                time.sleep(secs)
            return orig(*a, **k)
        return wrapper
    setattr(owner, name, make(orig, attr, int(nth), float(secs)))
from pfp_mlops.cli.app import main
sys.argv = ["pfp", *sys.argv[1:]]
main()
'''


def harness_argv(tmp: Path, *args: str) -> list[str]:
    script = tmp / "pfp_harness.py"
    if not script.exists():
        script.write_text(HARNESS)
    return [sys.executable, str(script), *args]


@dataclass
class Pfp:
    """A `pfp` subprocess whose stderr is watched line by line (for harness marks)."""

    proc: subprocess.Popen
    started: float
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, tmp: Path, args: list[str], env: dict[str, str], cwd: Path) -> Pfp:
        proc = subprocess.Popen(harness_argv(tmp, *args), cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        return cls(proc, time.monotonic())

    def wait_mark(self, mark: str, timeout: float = 240, *, any_line: bool = False) -> None:
        """Read stderr until a harness mark naming `mark` (or, with any_line, any line containing it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                if self.proc.poll() is not None:
                    break
                continue
            self.lines.append(line)
            if (any_line or line.startswith("HARNESS-MARK")) and mark in line:
                return
        out = self.proc.stdout.read() if self.proc.poll() is not None else ""
        raise AssertionError(f"mark {mark!r} never came (exit {self.proc.poll()}): {''.join(self.lines)[-3000:]}"
                             f"{out[-1000:]}")

    def finish(self, timeout: float = 240) -> tuple[int, str, str, float]:
        """(exit code, stdout, stderr without harness marks, seconds since start)."""
        out, err = self.proc.communicate(timeout=timeout)
        err = "".join(self.lines) + err
        clean = "\n".join(ln for ln in err.splitlines() if not ln.startswith("HARNESS-MARK"))
        return self.proc.returncode, out, clean, time.monotonic() - self.started


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("pfp: error:")]


# --- a killable MLflow server ---------------------------------------------------------------------------------------

class _Killable:
    """A test service that can crash (SIGKILL to its process group) or stop (SIGTERM), and be started again."""

    svc: Service | None

    def kill(self) -> None:
        if self.svc is not None:
            self.svc.kill()
        self.svc = None

    def stop(self) -> None:
        if self.svc is not None:
            self.svc.stop()
        self.svc = None

    def hang(self) -> None:
        """SIGSTOP the process group: the kernel still accepts connections, nothing ever answers."""
        import signal

        os.killpg(self.svc.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        import signal

        os.killpg(self.svc.proc.pid, signal.SIGCONT)


@dataclass
class MlflowServer(_Killable):
    """`mlflow server` on a SQLite file, artifacts proxied to a local folder or an S3 bucket; same port across
    restarts, so clients keep their URI. Fast-start flags from design.md (one worker, no job execution)."""

    root: Path
    artifacts: str = ""  # default: <root>/artifacts
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    svc: Service | None = None
    start_s: list[float] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> MlflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        env = {**os.environ, **self.env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
               "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
        env.pop("MLFLOW_TRACKING_URI", None)
        argv = [_venv_bin("mlflow"), "server", "--host", LOOPBACK, "--port", str(self.port),
                "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
                "--artifacts-destination", self.artifacts or str(self.root / "artifacts"), "--serve-artifacts",
                "--workers", "1"]
        t0 = time.monotonic()
        self.svc = _spawn("mlflow", argv, self.root / "mlflow.log", env=env)
        _wait(lambda: _http_ok(f"{self.uri}/health"), "mlflow server", self.svc.proc, self.svc.log, 180)
        self.start_s.append(round(time.monotonic() - t0, 2))
        return self


@dataclass
class S3Endpoint(_Killable):
    """A moto S3 endpoint with one bucket, stoppable and restartable on the same port (state is lost on restart,
    the bucket is re-created)."""

    root: Path
    bucket: str = "mlflow"
    port: int = 0
    svc: Service | None = None
    key_id: str = "pfp-fault-key"
    secret: str = "pfp-fault-secret"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def server_env(self) -> dict[str, str]:
        return {"MLFLOW_S3_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": self.key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret, "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self) -> S3Endpoint:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.svc = _spawn("moto", [_venv_bin("moto_server"), "-H", LOOPBACK, "-p", str(self.port)],
                          self.root / "moto.log")
        _wait(lambda: _http_ok(f"{self.url}/moto-api/"), "moto_server", self.svc.proc, self.svc.log, 60)
        import boto3

        boto3.client("s3", endpoint_url=self.url, aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
                     region_name="us-east-1").create_bucket(Bucket=self.bucket)
        return self


def shared_server(tmp_path_factory) -> MlflowServer:
    """One `mlflow server` (SQLite backend, proxied local artifacts) for the suites that only need a server to talk
    to (races, secrets, sustained use); stopped when the test process exits. Fault tests start their own."""
    if "server" not in _SERVER:
        import atexit

        server = MlflowServer(tmp_path_factory.mktemp("shared-mlflow-server")).start()
        atexit.register(server.stop)
        _SERVER["server"] = server
    return _SERVER["server"]
