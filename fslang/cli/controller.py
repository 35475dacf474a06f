"""`fsc` platform commands (controller, plan, apply, status); registered by
:mod:`fslang.cli`. Exit codes: 0 ok, 1 input errors, 2 usage, 3 platform.

With ``--format json`` standard output carries only the answer (plan,
status: one JSON document; apply: NDJSON, one event a line); diagnostics,
warnings and errors go to standard error."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from fslang.cli.options import (
    ControllerUrl,
    Document,
    Events,
    Format,
    Grace,
    Idle,
    Optimal,
    ReadyTimeout,
    SiteFile,
    Timeout,
    TokenFile,
)
from fslang.cli.sitecompile import _compile, recompile, site_digest
from fslang.cli.talk import _client, _fail, _json, _talking

#: As backends.platform.controller.server's (not imported here: every `fsc`
#: command would pay for importing the controller; a test keeps them equal).
DEFAULT_LISTEN, DEFAULT_OPENFLOW = "127.0.0.1:8181", "127.0.0.1:6653"


def _no_cycle_collector() -> None:
    """`plan` and `apply` are short processes that import much (pydantic
    models, the compiler: ~0.4 s of CPU) and make few reference cycles: the
    cycle collector, which runs again and again while modules are imported,
    is off for them (~15% of the imports' time)."""
    import gc

    gc.disable()


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `fsc` app."""

    @app.command("controller")
    def controller_cmd(
        listen: str = typer.Option(DEFAULT_LISTEN, "--listen", help="HTTP API address HOST:PORT"),
        openflow: str = typer.Option(
            DEFAULT_OPENFLOW,
            "--openflow",
            help="OpenFlow address HOST:PORT (the loopback unless told: give the address switches reach)",
        ),
        state: Path = typer.Option(
            Path("fsc-state"), "--state", help="state directory (lock, token, deployed site, journal)"
        ),
        request_timeout: float = typer.Option(
            30.0,
            "--request-timeout",
            min=0.5,
            max=3600,
            help="seconds a client has to send a request's head, and its body",
        ),
        down_after: float = typer.Option(
            3.0, "--down-after", min=0.5, max=3600, help="seconds of heartbeat silence before a host is declared down"
        ),
        up_after: float = typer.Option(
            3.0, "--up-after", min=0.0, max=3600, help="seconds of steady heartbeats before a down host is up again"
        ),
        auto_rebalance: bool = typer.Option(
            False,
            "--auto-rebalance",
            envvar="FSC_AUTO_REBALANCE",
            help="rebalance by measured load by itself (as `fsc rebalance --yes`), with hysteresis and a rate limit",
        ),
        rebalance_high: float = typer.Option(
            0.75,
            "--rebalance-high",
            envvar="FSC_REBALANCE_HIGH",
            min=0.01,
            max=10,
            help="high-water mark: an instance this busy (share of its cores) asks for one replica more",
        ),
        rebalance_low: float = typer.Option(
            0.25,
            "--rebalance-low",
            envvar="FSC_REBALANCE_LOW",
            min=0.0,
            max=10,
            help="low-water mark: a stage whose instances are all below it gives one replica back",
        ),
        capacity_pps: float = typer.Option(
            None,
            "--capacity-pps",
            envvar="FSC_CAPACITY_PPS",
            min=0.001,
            help="packets per second one core takes: load is measured in packets (default: CPU use)",
        ),
        rebalance_sustain: float = typer.Option(
            10.0,
            "--rebalance-sustain",
            envvar="FSC_REBALANCE_SUSTAIN",
            min=0.0,
            max=3600,
            help="seconds a decision must hold before the automatic mode carries it out",
        ),
        rebalance_every: float = typer.Option(
            60.0,
            "--rebalance-every",
            envvar="FSC_REBALANCE_EVERY",
            min=0.0,
            max=86400,
            help="the automatic mode changes at most once in this many seconds",
        ),
        power_hook: str = typer.Option(
            None,
            "--power-hook",
            envvar="FSC_POWER_HOOK",
            help="shell command run to power a host off when freed, on when needed: {host} and {action} (on/off) "
            "are replaced, quoted for the shell; e.g. 'ipmitool -H {host}-bmc chassis power {action}'",
        ),
    ) -> None:
        """Run the platform controller: OpenFlow to the switches, HTTP API for apply and the
        agents, and the monitoring loop (failover of hosts that go down, drains, and with
        --auto-rebalance rebalancing by measured load)."""
        from backends.platform.controller.server import StartupError, parse_hostport, run

        try:
            http_addr = parse_hostport(listen, "127.0.0.1")
            of_addr = parse_hostport(openflow, "127.0.0.1")
        except ValueError as err:
            raise _fail(f"controller: {err}; example: --listen 127.0.0.1:8181 --openflow 10.0.0.1:6653", 2) from None
        from fslang.cli.scaling import controller_setup

        setup = controller_setup(
            auto_rebalance,
            rebalance_high,
            rebalance_low,
            capacity_pps,
            rebalance_sustain,
            rebalance_every,
            power_hook,
            state,
        )
        try:
            run(http_addr, of_addr, state, request_timeout, recompile, down_after, up_after, setup)
        except StartupError as err:
            raise _fail(f"controller: {err}", 3) from None

    @app.command("plan")
    def plan_cmd(
        site: SiteFile,
        controller: ControllerUrl = None,
        token_file: TokenFile = None,
        optimal: Optimal = False,
        format: Document = Format.text,
        timeout: Timeout = 30.0,
        consolidate: bool = typer.Option(
            False, "--consolidate", help="the deployed site on the fewest hosts: the hosts freed and the moves"
        ),
    ) -> None:
        """Show what `apply` would change against the deployed site (with --consolidate:
        what consolidating it on the fewest hosts would free and move)."""
        _no_cycle_collector()
        from backends.platform.controller.protocol import ApplyRequest
        from backends.platform.controller.render import plan_text

        client = _client(controller, token_file, timeout)
        if consolidate:
            from fslang.cli.consolidate import consolidation_json, consolidation_text, plan_consolidation

            with _talking():
                c = plan_consolidation(site, client)
            sys.stdout.write(consolidation_json(c) if format is Format.json else consolidation_text(c))
            return
        with _talking():
            built = _compile(site, client, optimal, client.digest())
            plan = client.plan(ApplyRequest(site=built.name, files=built.files, source=built.source))
        sys.stdout.write(_json(plan) if format is Format.json else plan_text(plan, built.name))

    @app.command("apply")
    def apply_cmd(
        site: SiteFile,
        controller: ControllerUrl = None,
        token_file: TokenFile = None,
        yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
        optimal: Optimal = False,
        ready_timeout: ReadyTimeout = 60.0,
        drain: float = typer.Option(
            1.0, "--drain", min=0.0, max=3600, help="seconds between the flip and removing the old rules"
        ),
        format: Events = Format.text,
        timeout: Timeout = 30.0,
        consolidate: bool = typer.Option(
            False,
            "--consolidate",
            help="move the deployed site onto the fewest hosts: drain each freed host (make-before-break) "
            "and power it off with the controller's power hook",
        ),
        grace: Grace = 60.0,
        idle: Idle = 3.0,
    ) -> None:
        """Deploy SITE: consistent two-phase update; a failure leaves the old configuration."""
        _no_cycle_collector()
        from backends.platform.controller.protocol import ApplyRequest, ResultOk, event_line

        client = _client(controller, token_file, timeout)
        as_json = format is Format.json
        if not as_json or not yes:  # rich: 0.03 s of imports a JSON apply does not need
            from backends.platform.controller.render import event_text, plan_text
        if consolidate:
            from fslang.cli.consolidate import apply_consolidation, consolidation_text, plan_consolidation

            with _talking():
                deployed = client.digest()
                if not deployed.digest or deployed.digest not in (site_digest(site, False), site_digest(site, True)):
                    raise _fail(
                        f"apply --consolidate: {site} is not the deployed site; `fsc apply {site}` first, "
                        "then consolidate",
                        1,
                    )
                c = plan_consolidation(site, client)
                (sys.stderr if as_json else sys.stdout).write(consolidation_text(c))
                if c.freed and not yes:
                    if not sys.stdin.isatty():
                        raise _fail(
                            "apply: not a terminal, so cannot ask; review with `fsc plan --consolidate` and pass --yes",
                            2,
                        )
                    if not typer.confirm("consolidate?", default=False, err=as_json):
                        raise _fail("apply: cancelled, nothing changed", 2)
                apply_consolidation(c, client, grace, idle, ready_timeout, as_json)
            return
        with _talking():
            digest = site_digest(site, optimal)
            deployed = client.digest()
            same = bool(digest) and deployed.digest == digest
            name = deployed.site or site.stem
            if not same:
                name, source, files, own, same = _compile(site, client, optimal, deployed)
            if same:
                done = ResultOk(result="ok", changed=False, message="nothing to change (the deployed site is the same)")
                sys.stdout.write(
                    event_line(done) if as_json else f"{name}: nothing to change (the deployed site is the same)\n"
                )
                return
            req = ApplyRequest(
                site=name,
                files=files,
                source=source,
                digest=digest,
                ready_timeout=ready_timeout,
                drain_seconds=drain,
            )
            if not yes:
                if not sys.stdin.isatty():
                    raise _fail("apply: not a terminal, so cannot ask; review with `fsc plan` and pass --yes", 2)
                (sys.stderr if as_json else sys.stdout).write(plan_text(client.plan(req), name))
                if not typer.confirm("apply these changes?", default=False, err=as_json):
                    raise _fail("apply: cancelled, nothing changed", 2)
            last = None
            for ev in client.apply(req):
                last = ev
                sys.stdout.write(event_line(ev) if as_json else event_text(ev) + "\n")
                sys.stdout.flush()
        if getattr(last, "result", None) == "ok":
            from fslang.cli import applycache

            applycache.save(client.url, site, files, own)  # deployed now: the next apply starts from it
        else:
            if last is None or getattr(last, "result", None) is None:
                sys.stderr.write(
                    "fsc: apply: the controller ended the answer without a result; "
                    "check `fsc status` and the controller's log\n"
                )
            raise typer.Exit(3)

    @app.command("drain")
    def drain_cmd(
        host: str = typer.Argument(..., help="the module host to empty (e.g. mh1)"),
        controller: ControllerUrl = None,
        token_file: TokenFile = None,
        grace: Grace = 60.0,
        idle: Idle = 3.0,
        ready_timeout: ReadyTimeout = 60.0,
        format: Events = Format.text,
        timeout: Timeout = 30.0,
        power_off: bool = typer.Option(
            False, "--power-off", help="once drained, power HOST off with the controller's power hook"
        ),
    ) -> None:
        """Move every instance off HOST, make-before-break: new connections go to the new
        instances at once, established ones stay with the old until they end or --grace
        runs out. Afterwards HOST runs nothing and no placement uses it until `fsc undrain`."""
        from backends.platform.controller.protocol import DrainRequest, event_line
        from backends.platform.controller.render import event_text

        client = _client(controller, token_file, timeout)
        as_json = format is Format.json
        last = None
        with _talking():
            for ev in client.drain(
                host, DrainRequest(grace=grace, idle=idle, ready_timeout=ready_timeout, power_off=power_off)
            ):
                last = ev
                sys.stdout.write(event_line(ev) if as_json else event_text(ev) + "\n")
                sys.stdout.flush()
        if getattr(last, "result", None) != "ok":
            if last is None or getattr(last, "result", None) is None:
                sys.stderr.write("fsc: drain: the controller ended the answer without a result; see `fsc status`\n")
            raise typer.Exit(3)

    @app.command("undrain")
    def undrain_cmd(
        host: str = typer.Argument(..., help="the drained module host"),
        controller: ControllerUrl = None,
        token_file: TokenFile = None,
        format: Document = Format.text,
        timeout: Timeout = 30.0,
    ) -> None:
        """Let later placements use HOST again (nothing moves now)."""
        client = _client(controller, token_file, timeout)
        with _talking():
            answer = client.undrain(host)
        sys.stdout.write(_json(answer) if format is Format.json else answer.message + "\n")
        if answer.state == "draining":
            raise typer.Exit(3)

    @app.command("status")
    def status_cmd(
        controller: ControllerUrl = None,
        token_file: TokenFile = None,
        format: Document = Format.text,
        timeout: Timeout = 30.0,
    ) -> None:
        """Switches connected, hosts alive with their load, instances, rules against tcam."""
        from backends.platform.controller.render import status_text

        client = _client(controller, token_file, timeout)
        with _talking():
            st = client.status()
        sys.stdout.write(_json(st) if format is Format.json else status_text(st))
