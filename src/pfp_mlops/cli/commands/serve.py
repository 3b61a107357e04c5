from __future__ import annotations

from typing import Annotated

import typer

from pfp_mlops.cli.options import ConfigOpt, ProfileOpt, SetOpt


def serve(
    alias: Annotated[str | None, typer.Option("--alias", help="Registry alias to follow [default: "
                                                            "registry.production_alias, production]")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on [default: serve.host, "
                                                          "127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port [default: serve.port, 8080]")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes, each with its own model "
                                                                "[default: serve.workers, 1]")] = None,
    poll_seconds: Annotated[float | None, typer.Option(
        "--poll-seconds", help="How often each worker checks the alias (jittered ±20 %) [default: "
                               "serve.poll_seconds, 5]")] = None,
    config: ConfigOpt = None, set_: SetOpt = None, profile: ProfileOpt = None,
) -> None:
    """Serve the version an alias holds (MLflow scoring routes) and follow the alias without dropping requests."""
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.serve import prepare, start

        opts = prepare(inv.ctx, alias=alias, host=host, port=port, workers=workers, poll_seconds=poll_seconds,
                       config=config, profile=profile, overrides=set_)
        start(inv.ctx, opts)

    run("serve", body, lambda _: None, json_out=False, config=config, profile=profile, overrides=set_)
