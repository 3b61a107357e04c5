"""The production topology from plain processes, for tests and for users without Docker.

    PostgreSQL (MLflow backend store)  initdb into a temp dir, `postgres` on 127.0.0.1:<port>
    moto_server (S3 endpoint)          buckets `mlflow` (MLflow artifacts) and `dvc` (DVC remote)
    mlflow server                      PostgreSQL backend, artifacts proxied to s3://mlflow/ (as docker-compose.yaml)

It depends on nothing of pfp (standard library + the venv's `moto_server`, `mlflow`, boto3 to create buckets), so
`scripts/local-stack.sh` runs it for a user and `tests/servers.py` imports it for the test suite.

    python scripts/local_stack.py            # start everything, print the environment to export, wait for Ctrl-C

PostgreSQL refuses to run as root: as root the cluster is owned by and run as the `postgres` user.
The binaries are looked up on PATH, then in /usr/lib/postgresql/*/bin (Debian's `postgresql` package).
With PFP_TEST_POSTGRES_URI=postgresql://user@host:port/ an existing server is used (a fresh database per stack).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
ARTIFACT_BUCKET = "mlflow"
DVC_BUCKET = "dvc"
# moto accepts any credentials; these are dummies that only exist on loopback.
S3_KEY_ID = "pfp-local-key"
S3_SECRET = "pfp-local-secret-not-a-real-one"


class StackError(RuntimeError):
    """A service of the local stack could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _venv_bin(name: str) -> str:
    """The executable next to this interpreter (the venv), else the one on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


def pg_bin(name: str) -> str:
    """A PostgreSQL server binary: PATH first, then Debian's versioned folders (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if (Path(folder) / name).exists():
            return str(Path(folder) / name)
    raise StackError(f"PostgreSQL's {name} not found: install it (`apt-get install -y postgresql`; .ci/run does)")


def _wait(check, what: str, proc: subprocess.Popen | None, log: Path | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited with {proc.returncode} while starting{_tail(log)}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise StackError(f"{what} not ready after {timeout:.0f}s{_tail(log)}")


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return "\n--- " + str(log) + " (tail) ---\n" + log.read_text(errors="replace")[-2000:]


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback only
        return r.status == 200


def _port_open(port: int) -> bool:
    with socket.create_connection((LOOPBACK, port), timeout=1):
        return True


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    log: Path

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group: mlflow server's uvicorn/gunicorn children too
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, not a shutdown (fault tests use it)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def _libc_prctl():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()  # resolved here: the child between fork and exec must not import anything


def _die_with_parent() -> None:
    """Linux: SIGTERM the service if the process that started it dies without stopping it (a killed test run)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(name: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
           user: str | None = None) -> Service:
    fh = open(log, "ab")  # noqa: SIM115 - owned by the child
    # `user=` switches uid in the child itself: no runuser/su in between, so signals reach postgres directly.
    proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True, user=user, group=user, extra_groups=[] if user else None,
                            preexec_fn=_die_with_parent)
    fh.close()
    return Service(name, proc, log)


@dataclass
class LocalStack:
    """Start with `start()`, stop with `stop()` (or use it as a context manager). Every process is ours."""

    root: Path | None = None
    services: list[Service] = field(default_factory=list)
    pg_port: int = 0
    s3_port: int = 0
    mlflow_port: int = 0
    backend_uri: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    _tmp: list[str] = field(default_factory=list)

    # --- what clients need ---
    @property
    def tracking_uri(self) -> str:
        return f"http://{LOOPBACK}:{self.mlflow_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.s3_port}"

    def client_env(self) -> dict[str, str]:
        """The environment `pfp`, MLflow clients and DVC need; nothing else changes between topologies."""
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": S3_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    # --- lifecycle ---
    def start(self) -> LocalStack:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="pfp-stack-"))
            self._tmp.append(str(self.root))
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            t0 = time.monotonic()
            self._start_s3()  # moto first: it starts while PostgreSQL initialises
            self._start_postgres()
            self._wait_s3()
            self.timings["postgres+s3_s"] = round(time.monotonic() - t0, 2)
            t1 = time.monotonic()
            self._start_mlflow()
            self.timings["mlflow_s"] = round(time.monotonic() - t1, 2)
            self.timings["total_s"] = round(time.monotonic() - t0, 2)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for svc in reversed(self.services):
            svc.stop()
        self.services.clear()
        for path in self._tmp:
            shutil.rmtree(path, ignore_errors=True)
        self._tmp.clear()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def restart_postgres(self, down_s: float = 0.0) -> float:
        """Fast-shutdown PostgreSQL (SIGINT: sessions are cut, as in a crash or failover), wait `down_s`, start it
        again on the same port and data; returns the seconds it was unreachable. Fault tests use it."""
        svc = next(s for s in self.services if s.name == "postgres")
        t0 = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(svc.proc.pid, signal.SIGINT)
        svc.proc.wait(30)
        time.sleep(down_s)
        user = "postgres" if os.geteuid() == 0 else None
        new = _spawn("postgres", list(svc.proc.args), svc.log, user=user)
        self.services[self.services.index(svc)] = new
        base = f"postgresql://mlflow@{LOOPBACK}:{self.pg_port}"
        _wait(lambda: self._pg_ready(base), "postgres (restart)", new.proc, svc.log, 60)
        return round(time.monotonic() - t0, 2)

    # --- services ---
    def _start_postgres(self) -> None:
        existing = os.environ.get("PFP_TEST_POSTGRES_URI")
        if existing:
            self._create_database(existing.rstrip("/"))
            return
        user = "postgres" if os.geteuid() == 0 else None
        if user is not None:
            try:
                pwd.getpwnam(user)
            except KeyError:
                raise StackError("running as root needs the `postgres` user (apt-get install -y postgresql)") from None
        # Not under self.root: pytest's and mkdtemp's folders are private to root; the cluster belongs to `postgres`.
        pgdir = Path(tempfile.mkdtemp(prefix="pfp-pg-"))
        self._tmp.append(str(pgdir))
        if user is not None:
            shutil.chown(pgdir, user, user)
        log = pgdir / "postgres.log"
        init = subprocess.run(
            [pg_bin("initdb"), "-D", str(pgdir / "data"), "-U", "mlflow", "--auth=trust", "-E", "UTF8",
               "--no-sync", "--no-instructions"],
            capture_output=True, text=True, timeout=120, user=user, group=user, extra_groups=[] if user else None,
            cwd=pgdir,
        )
        if init.returncode != 0:
            raise StackError(f"initdb failed: {init.stderr[-1500:]}")
        self.pg_port = free_port()
        # Loopback TCP only; the unix socket lives in the private folder; fsync off: a throwaway test cluster.
        argv = [pg_bin("postgres"), "-D", str(pgdir / "data"), "-h", LOOPBACK, "-p", str(self.pg_port),
                "-k", str(pgdir), "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        if user is not None:
            Path(log).touch()
            shutil.chown(log, user, user)
        self.services.append(_spawn("postgres", argv, log, user=user))
        base = f"postgresql://mlflow@{LOOPBACK}:{self.pg_port}"
        _wait(lambda: self._pg_ready(base), "postgres", self.services[-1].proc, log, 60)
        self._create_database(base)

    @staticmethod
    def _pg_ready(base: str) -> bool:
        import psycopg2

        psycopg2.connect(f"{base}/postgres", connect_timeout=2).close()
        return True

    def _create_database(self, base: str) -> None:
        import psycopg2

        name = f"mlflow_{uuid.uuid4().hex[:8]}"
        conn = psycopg2.connect(f"{base}/postgres", connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        # psycopg2 is the driver installed with pfp's dev extras (SQLAlchemy's default for postgresql:// is psycopg 3).
        self.backend_uri = f"{base.replace('postgresql://', 'postgresql+psycopg2://', 1)}/{name}"

    def _start_s3(self) -> None:
        self.s3_port = free_port()
        log = self.root / "moto.log"
        self.services.append(_spawn("moto", [_venv_bin("moto_server"), "-H", LOOPBACK, "-p", str(self.s3_port)], log))

    def _wait_s3(self) -> None:
        svc = next(s for s in self.services if s.name == "moto")
        _wait(lambda: _http_ok(f"{self.s3_endpoint}/moto-api/"), "moto_server", svc.proc, svc.log, 60)
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, aws_access_key_id=S3_KEY_ID,
                          aws_secret_access_key=S3_SECRET, region_name="us-east-1")
        for bucket in (ARTIFACT_BUCKET, DVC_BUCKET):
            s3.create_bucket(Bucket=bucket)

    def _start_mlflow(self) -> None:
        self.mlflow_port = free_port()
        log = self.root / "mlflow.log"
        env = {**os.environ, **self.client_env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
               "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
        env.pop("MLFLOW_TRACKING_URI", None)
        # As docker-compose.yaml: the server proxies artifacts to the bucket, clients need no S3 keys for MLflow.
        argv = [_venv_bin("mlflow"), "server", "--host", LOOPBACK, "--port", str(self.mlflow_port),
                "--backend-store-uri", self.backend_uri, "--artifacts-destination", f"s3://{ARTIFACT_BUCKET}/",
                "--serve-artifacts", "--workers", "1"]
        self.services.append(_spawn("mlflow", argv, log, env=env))
        _wait(lambda: _http_ok(f"{self.tracking_uri}/health"), "mlflow server", self.services[-1].proc, log, 180)


def main() -> int:
    stack = LocalStack(root=Path(os.environ["PFP_STACK_DIR"]) if os.environ.get("PFP_STACK_DIR") else None)
    # Ctrl-C and SIGTERM both stop the stack (a shell's `cmd &` starts us with SIGINT ignored: restore it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        stack.start()
        print(f"# local stack ready in {stack.timings['total_s']}s (logs in {stack.root}); Ctrl-C stops it", flush=True)
        print(f"# PostgreSQL backend: {stack.backend_uri}", flush=True)
        for k, v in stack.client_env().items():
            print(f"export {k}={v}", flush=True)
        print(f"# DVC remote: dvc remote modify --local storage endpointurl {stack.s3_endpoint}", flush=True)
        while all(s.proc.poll() is None for s in stack.services):
            time.sleep(1)
        dead = [s.name for s in stack.services if s.proc.poll() is not None]
        print(f"# stopped: {', '.join(dead)} exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except StackError as e:
        print(f"local-stack: {e}", file=sys.stderr)
        return 3
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
