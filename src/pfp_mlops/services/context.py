"""What every service needs, built once per command and passed down."""

from __future__ import annotations

import getpass
import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfp_mlops.settings import PipelineConfig, Settings

if TYPE_CHECKING:
    from pfp_mlops.ports import RegistryPort

log = logging.getLogger("pfp")


@dataclass
class Context:
    """`registry_impl`: a registry to use instead of the configured MLflow store (tests, the API, notebooks pass
    `adapters.memory_registry.MemoryRegistry`); built lazily from the settings when None."""

    settings: Settings
    cfg: PipelineConfig
    progress: Any = None  # optional callable(str) for live progress lines
    extra: dict[str, Any] = field(default_factory=dict)
    registry_impl: RegistryPort | None = None

    @property
    def registry(self) -> RegistryPort:
        """The registry port; the MLflow adapter (built once, on first use: importing mlflow costs ~2 s)."""
        if self.registry_impl is None:
            from pfp_mlops.adapters.mlflow_registry import Registry

            self.registry_impl = Registry(self.settings, lifecycle_experiment=self.cfg.registry.lifecycle_experiment)
        return self.registry_impl

    @property
    def model_name(self) -> str:
        return self.settings.model_name

    @property
    def home(self) -> Path:
        h = self.settings.resolved_home()
        h.mkdir(parents=True, exist_ok=True)
        return h

    def say(self, message: str) -> None:
        """A progress line: to the live display when there is one (and the log file), else to the log."""
        if self.progress is not None:
            log.debug(message)
            self.progress(message)
        else:
            log.info(message)


def who() -> str:
    """The user or CI job that acts, for the ledger and the `registered_by` tag."""
    for var in ("PFP_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_USER"):
        if os.environ.get(var):
            job = os.environ.get("GITHUB_RUN_ID") or os.environ.get("CI_JOB_ID")
            return f"{os.environ[var]}" + (f" (ci job {job})" if job else "")
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def git_state() -> dict[str, str]:
    """Commit and dirty flag of the working directory's git repository (empty when not a repository)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return {}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10)
        return {"git_commit": commit.stdout.strip(), "git_dirty": str(bool(dirty.stdout.strip())).lower()}
    except (OSError, subprocess.SubprocessError):
        return {}
