"""The serving confirmation of promote/validate/rollback (`--serve-url`): attached to the result, rendered."""

from __future__ import annotations

from typing import Any


class WithServing:
    """A lifecycle result plus the confirmation; renders and serialises like the result, with `serving` added."""

    def __init__(self, result: Any, serving: dict[str, Any] | None) -> None:
        self._result = result
        self.serving = serving

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)

    def to_dict(self) -> dict[str, Any]:
        out = self._result.to_dict() if hasattr(self._result, "to_dict") else {}
        out["serving"] = self.serving
        return out


def confirm(inv: Any, result: Any, *, serve_url: str | None, version: int | None, alias: str) -> Any:
    """Confirm when a server URL is set (option or PFP_SERVE_URL); a server that did not follow is a warning."""
    from pfp_mlops.cli.output import print_warning
    from pfp_mlops.services.serving import confirm_after_move

    ledger_run_id = getattr(result, "ledger_run_id", None) or inv.ctx.extra.get("ledger_run_id")
    serving = confirm_after_move(inv.ctx, serve_url=serve_url, version=version, alias=alias,
                                 ledger_run_id=ledger_run_id)
    if serving is None:
        return result
    if not serving["ok"]:
        print_warning(f"serving: {serving['message']} ({serving['url']}); the registry change stands")
    return WithServing(result, serving)


def render(result: Any) -> None:
    serving = getattr(result, "serving", None) if isinstance(result, WithServing) else None
    if serving and serving["ok"]:
        from pfp_mlops.cli import output

        output.kv("serving", [("server", serving["url"]), ("confirmed", serving["message"]),
                              ("seconds", serving["seconds"])])
