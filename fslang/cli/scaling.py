"""`fsc rebalance` and the controller's scaling and power options; registered
by :mod:`fslang.cli`. Exit codes: 0 ok, 1 input errors, 2 usage, 3 platform."""

from __future__ import annotations

import sys
from typing import Any

import typer

from fslang.cli.options import ControllerUrl, Format, ReadyTimeout, Timeout, TokenFile
from fslang.cli.talk import _client, _fail, _talking


def controller_setup(
    auto: bool,
    high: float,
    low: float,
    capacity_pps: float | None,
    sustain: float,
    every: float,
    power_hook: str | None,
    state: Any,
) -> Any:
    """What `fsc controller` does to its controller before it serves: the
    rebalance thresholds, the automatic mode, the power hook. Raises a usage
    error (exit 2) for a bad combination."""
    from backends.platform.controller.power import PowerHook, PowerHookError, check_template
    from backends.platform.controller.rebalance import Thresholds

    if low >= high:
        raise _fail(f"controller: --rebalance-low ({low}) must be below --rebalance-high ({high})", 2)
    if power_hook is not None:
        try:
            check_template(power_hook)
        except PowerHookError as err:
            raise _fail(f"controller: {err}", 2) from None
    th = Thresholds(high=high, low=low, capacity_pps=capacity_pps)

    def setup(ctl: Any) -> None:
        from backends.platform.controller.scaling import AutoRebalance

        ctl.thresholds = th
        if auto:
            ctl.auto = AutoRebalance(ctl, th, sustain=sustain, every=every)
        if power_hook is not None:
            ctl.power = PowerHook(power_hook, state / "power.json")

    return setup


def register(app: typer.Typer) -> None:
    """Add `fsc rebalance` to the `fsc` app."""

    @app.command("rebalance")
    def rebalance_cmd(
        controller: ControllerUrl = None,
        token_file: TokenFile = None,
        yes: bool = typer.Option(False, "--yes", "-y", help="carry the plan out (else only show it)"),
        high: float = typer.Option(
            None, "--high", min=0.01, max=10, help="high-water mark (default: the controller's)"
        ),
        low: float = typer.Option(None, "--low", min=0.0, max=10, help="low-water mark (default: the controller's)"),
        capacity_pps: float = typer.Option(
            None, "--capacity-pps", min=0.001, help="packets per second one core takes (default: measure CPU)"
        ),
        ready_timeout: ReadyTimeout = 60.0,
        format: Format = typer.Option(
            Format.text,
            "--format",
            help="text, or json (NDJSON: the plan on one line, with --yes the apply's events after it)",
        ),
        timeout: Timeout = 30.0,
    ) -> None:
        """Rebalance by measured load: within each replicated stage's range add a replica
        when its busiest instance is above the high-water mark, remove one when all are
        below the low-water mark, and move weights toward measured capacity. Shows the plan;
        with --yes carries it out with the consistent update of `apply`."""
        from backends.platform.controller.protocol import event_line
        from backends.platform.controller.render import event_text
        from backends.platform.controller.scaling import RebalanceRequest, answer_text

        client = _client(controller, token_file, timeout)
        as_json = format is Format.json
        if high is not None and low is not None and low >= high:
            raise _fail(f"rebalance: --low ({low}) must be below --high ({high})", 2)
        req = RebalanceRequest(high=high, low=low, capacity_pps=capacity_pps, ready_timeout=ready_timeout)
        with _talking():
            site = client.digest().site or "site"
            answer = client.rebalance_plan(req)
            sys.stdout.write(answer.model_dump_json(by_alias=True) + "\n" if as_json else answer_text(answer, site))
            sys.stdout.flush()
            if answer.error:
                raise typer.Exit(3)
            if not yes or not answer.changed:
                return
            last = None
            for ev in client.rebalance(req.model_copy(update={"targets": answer.targets})):
                last = ev
                sys.stdout.write(event_line(ev) if as_json else event_text(ev) + "\n")
                sys.stdout.flush()
        if getattr(last, "result", None) != "ok":
            if last is None or getattr(last, "result", None) is None:
                sys.stderr.write("fsc: rebalance: the controller ended the answer without a result; see `fsc status`\n")
            raise typer.Exit(3)
