"""The `pfp` entry point. Only typer is imported here: `pfp --help` must stay instant."""

from __future__ import annotations

import typer

from pfp_mlops.cli.commands import (
    demo_data,
    doctor,
    history,
    ingest,
    promote,
    register,
    repair,
    rollback,
    run_all,
    serve,
    split,
    status,
    train,
    validate,
)

app = typer.Typer(
    name="pfp",
    help="pfp-mlops: take a YOLO detector from research to production on MLflow, and keep it healthy there.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

app.command("demo-data")(demo_data.demo_data)
app.command("ingest")(ingest.ingest)
app.command("split")(split.split)
app.command("train")(train.train)
app.command("register")(register.register)
app.command("promote")(promote.promote)
app.command("validate")(validate.validate)
app.command("rollback")(rollback.rollback)
app.command("run-all")(run_all.run_all)
app.command("serve")(serve.serve)
app.command("status")(status.status)
app.command("history")(history.history)
app.command("repair")(repair.repair)
app.command("doctor")(doctor.doctor)


def main() -> None:
    """Usage errors become one `pfp: error:` line (and JSON with --json), like every other error."""
    import sys

    try:
        code = app(standalone_mode=False)
    except typer.TyperException as e:  # typer's own (vendored) click: UsageError, BadParameter, NoSuchOption, …
        show = getattr(e, "show", None)
        if type(e).__name__ == "NoArgsIsHelpError" and show is not None:
            show()
            code = getattr(e, "exit_code", 2)
        else:
            from pfp_mlops.cli.runner import usage_error

            code = usage_error(e, sys.argv[1:])
    except typer.Abort:
        code = 130
    sys.exit(code if isinstance(code, int) else 0)

if __name__ == "__main__":
    main()
