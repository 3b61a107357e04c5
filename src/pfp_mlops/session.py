"""The one set-up every entry point runs before a service: the CLI's runner and the Python API (`Project.open`).

Settings (environment + `.env`) → secrets registered with the scrubber → the YAML config of the profile with the
overrides on top → logging (stderr + `<PFP_HOME>/logs/pfp.log`, scrubbed) → the offline switches → a Context.
Sharing it is the point: a notebook that skipped the offline switches would let Ultralytics' font check reach the
network; one that skipped the scrubber could print a secret.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pfp_mlops.overrides import Override
    from pfp_mlops.ports import RegistryPort
    from pfp_mlops.services.context import Context


def open_context(*, config: Path | None = None, profile: str | None = None, demo: bool = False,
                 overrides: Iterable[Override] = (), device: str | None = None,
                 device_source: str = "--device", registry: RegistryPort | None = None) -> Context:
    """Build the settings, config and logging exactly as `pfp <command>` does; returns the service Context.

    `overrides` apply to the YAML config after the profile (see pfp_mlops.overrides); `device` replaces
    PFP_DEVICE for this context (the `--device` flag); `registry` replaces the configured MLflow store (an
    in-memory one in tests and notebooks). Errors are ConfigError (exit 2) naming what is wrong.
    """
    # The secret registry, the scrubber and the log set-up (pfp_mlops/logs.py): the CLI's and the API's alike.
    from pfp_mlops.domain.errors import ConfigError
    from pfp_mlops.logs import register_secrets, setup_logging
    from pfp_mlops.overrides import apply_overrides
    from pfp_mlops.runtime_env import apply_offline_env
    from pfp_mlops.settings import load_pipeline_config, load_settings

    register_secrets()  # from the environment already: an error in the settings themselves must not print them
    settings = load_settings()
    if device is not None:
        try:
            settings = load_settings(PFP_DEVICE=device)
        except ConfigError as e:
            raise ConfigError(f"{device_source}: {e.message.removeprefix('PFP_DEVICE: ')}") from None
    register_secrets(settings.secret_values())
    profile = profile or ("demo" if demo and not os.environ.get("PFP_PROFILE") else None)
    overrides = list(overrides)
    cfg = apply_overrides(load_pipeline_config(settings, config=config, profile=profile), overrides)
    home = settings.resolved_home()
    if home.exists() and not home.is_dir():
        raise ConfigError(f"PFP_HOME: {home} exists and is not a folder")
    setup_logging(settings.log_level, settings.log_format, home / "logs")
    apply_offline_env(home)
    from pfp_mlops.services.context import Context

    ctx = Context(settings, cfg, progress=None, registry_impl=registry)
    if overrides:
        ctx.extra["config_overrides"] = overrides  # the training run logs them (param `overrides`)
    return ctx


def with_changes(ctx: Context, *, overrides: Iterable[Override] = (), device: str | None = None) -> Context:
    """A copy of a context with more overrides (`Project.train(epochs=…)`), sharing its registry client."""
    from pfp_mlops.domain.errors import ConfigError
    from pfp_mlops.overrides import apply_overrides
    from pfp_mlops.settings import load_settings

    overrides = list(overrides)
    if not overrides and device is None:
        return ctx
    settings = ctx.settings
    if device is not None:
        try:
            settings = load_settings(PFP_DEVICE=device)
        except ConfigError as e:
            raise ConfigError(f"device: {e.message.removeprefix('PFP_DEVICE: ')}") from None
    from pfp_mlops.services.context import Context

    extra: dict[str, Any] = dict(ctx.extra)
    if overrides:
        extra["config_overrides"] = [*extra.get("config_overrides", []), *overrides]
    cfg = apply_overrides(ctx.cfg, overrides)
    same_store = settings.tracking_uri() == ctx.settings.tracking_uri() and (
        cfg.registry.lifecycle_experiment == ctx.cfg.registry.lifecycle_experiment)
    # same store: keep the registry (an injected one, or the MLflow client already built)
    return Context(settings, cfg, progress=ctx.progress, extra=extra,
                   registry_impl=ctx.registry_impl if same_store else None)
