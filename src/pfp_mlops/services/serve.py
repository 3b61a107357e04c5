"""`pfp serve`: check the options and the alias, then hand over to the server (`pfp_mlops.serving`)."""

from __future__ import annotations

from pathlib import Path

from pfp_mlops.domain.errors import UserError
from pfp_mlops.services.context import Context


def prepare(ctx: Context, *, alias: str | None = None, host: str | None = None, port: int | None = None,
            workers: int | None = None, poll_seconds: float | None = None, config: Path | None = None,
            profile: str | None = None, overrides: list[str] | None = None):
    """Options from the CLI over the `serve:` section; the alias must hold a version now (fail fast: exit 2)."""
    from pfp_mlops.serving import state
    from pfp_mlops.serving.runtime import Options

    sc = ctx.cfg.serve
    alias = alias or sc.alias or ctx.cfg.registry.production_alias
    port = sc.port if port is None else port
    workers = sc.workers if workers is None else workers
    poll = sc.poll_seconds if poll_seconds is None else poll_seconds
    if not 0 < port < 65536:
        raise UserError(f"--port must be 1..65535 (got {port})")
    if not 1 <= workers <= 64:
        raise UserError(f"--workers must be 1..64 (got {workers})")
    if not poll > 0:
        raise UserError(f"--poll-seconds must be > 0 (got {poll})")
    name = ctx.model_name
    if not ctx.registry.model_exists(name):
        raise UserError(f"registered model {name!r} not found: register and promote a model first")
    version = ctx.registry.alias_version(name, alias)
    if version is None:
        raise UserError(f"no version of {name} holds alias {alias!r}: promote one first")
    ctx.say(f"serving {name}@{alias} (now v{version}) on http://{host or sc.host}:{port} with {workers} worker(s)")
    return Options(model=name, alias=alias, host=host or sc.host, port=port, workers=workers, poll_seconds=poll,
                   max_request_bytes=sc.max_request_bytes, state_dir=str(state.state_dir(ctx.home, port)),
                   config=str(config.resolve()) if config else None, profile=profile,
                   overrides=list(overrides or []))


def start(ctx: Context, opts) -> None:
    from pfp_mlops.serving.server import serve

    serve(opts, graceful_timeout_s=ctx.cfg.serve.graceful_timeout_s, log_level=ctx.settings.log_level)
