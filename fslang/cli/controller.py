"""`fsc` platform commands (controller, plan, apply, status); registered by
:mod:`fslang.cli`. Exit codes: 0 ok, 1 input errors, 2 usage, 3 platform.

With ``--format json`` standard output carries only the answer (plan,
status: one JSON document; apply: NDJSON, one event a line); diagnostics,
warnings and errors go to standard error."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

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


def _fail(message: str, code: int) -> typer.Exit:
    sys.stderr.write(f"fsc: {message}\n")
    return typer.Exit(code)


def _client(url: str | None, token_file: str | None, timeout: float) -> Any:
    from backends.platform.controller.client import DEFAULT_URL, ApiClient, ClientError, read_token

    try:
        return ApiClient(url or os.environ.get("FSC_CONTROLLER") or DEFAULT_URL, read_token(token_file), timeout)
    except ClientError as err:
        raise _fail(str(err), 2) from None


@contextmanager
def _talking() -> Iterator[None]:
    """A controller that refuses or answers nonsense: one line, exit 3 (2 for usage)."""
    from backends.platform.controller.client import ClientError

    try:
        yield
    except ClientError as err:
        raise _fail(str(err), 2 if err.usage else 3) from None


def _json(doc: Any) -> str:
    return json.dumps(doc.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True) + "\n"


class _Compiled(NamedTuple):
    """What `plan`/`apply` compiled: the site's name and text, its files, fsc's
    own files of the compile (the incremental cache, kept by :mod:`applycache`),
    and whether it is what is deployed (nothing to change)."""

    name: str
    source: str
    files: dict[str, str]
    own: dict[str, str]
    same: bool


def _compile(site: Path, client: Any, optimal: bool, known: Any = None) -> _Compiled:
    """Compile SITE against what is deployed.

    The deployed placement is the previous one (modules move only when they
    must); the same generation as deployed first (equal files: nothing to
    do), else the other generation. ``known``: the controller's digest answer;
    when the client's cache (:mod:`applycache`) holds the deployed files it
    names, they are not fetched again, and the compile starts from them as
    `fsc compile --previous` would: a one-policy match edit is spliced into
    them (fslang.incremental) when the cache shows the result is the full
    compile's (same fsc, generation, hosts left out and scale)."""
    import fslang.cli as cli
    from compiler.placement.place import Placement
    from fslang import api
    from fslang.cli import applycache, report

    cli._BATCH = True  # the process ends with the command: no heap teardown (see fslang.cli.run)
    name, data, diags = api.read_source(site)
    if data is None:
        report(api.SourceFile(name, ""), diags)
        raise typer.Exit(1)
    kept = applycache.load(client.url, site, known.files_digest) if known is not None else None
    if kept is not None:
        deployed = {"generation": known.generation, "files": kept.files}
        out = frozenset(known.unavailable)
    else:
        answer = client.deployed()
        deployed = answer.model_dump()
        out = frozenset(answer.unavailable)  # down or drained: placement leaves them out, as the failover does
    gen = deployed.get("generation")
    prev = None
    if gen is not None and "placement.json" in deployed.get("files", {}):
        try:
            prev = Placement.from_json(deployed["files"]["placement.json"])
        except (ValueError, KeyError):
            prev = None
    shown = False
    scale = _scale_of(prev, keep_weights=False)
    folder = kept.folder if kept is not None and prev is not None else None

    def build(g: int) -> _Compiled:
        nonlocal shown
        b = api.build(
            name, data, prev, optimal, generation=g, unavailable=out, scale=scale, previous_dir=folder, cache=True
        )
        if not shown:
            report(b.source, b.diagnostics)
            shown = True
        if not b.ok:
            raise typer.Exit(1)
        site_name = b.site.name if b.site is not None else deployed_name
        return _Compiled(site_name, b.source.text, b.files, b.cache, False)

    deployed_name = known.site if known is not None and known.site else site.stem
    if gen is not None:
        c = build(int(gen))
        if c.files == deployed.get("files"):
            if kept is None or not (kept.folder / CACHE_FILE).exists():
                applycache.save(client.url, site, c.files, c.own)
            return c._replace(same=True)
        if _ingress_only(deployed.get("files") or {}, c.files):
            return c
    return build(0 if gen is None else 1 - int(gen))


#: fslang.incremental.CACHE (not imported here: it imports the compiler)
CACHE_FILE = ".fsc-cache/incremental.json"


def _ingress_only(old: dict[str, str], new: dict[str, str]) -> bool:
    """True when ``new`` (compiled with the deployed generation) differs from
    ``old`` only by ingress-table rules added or deleted (none replaced in
    place), with the same instances: then one atomic bundle per switch (the
    flip) is the whole update, and a generation change, which rewrites every
    rule, is not needed. Compares the `.ofctl` text (deterministic), so it
    costs no OpenFlow parsing (nor importing the controller's OpenFlow code).
    The instances depend on plan.json only through its generation and site
    name (backends/platform/controller/instances.py)."""
    from backends.emit.documents import PlanDocument
    from compiler.lowering import tables as T

    changed = {p for p in set(old) | set(new) if old.get(p) != new.get(p)}
    if any(not (p == "plan.json" or p.startswith("openflow/")) for p in changed):
        return False
    try:
        docs = [PlanDocument.from_text(f["plan.json"]) if "plan.json" in f else None for f in (old, new)]
    except ValueError:
        return False
    facts = [(d.generation, d.site) if d is not None else None for d in docs]
    if facts[0] != facts[1]:
        return False
    ingress = frozenset().union(*(d.update.ingress_tables if d is not None else T.INGRESS_TABLES for d in docs))

    def key(line: str) -> tuple[str, str, str]:
        head, _, _actions = line.partition(",actions=")
        fields = head.split(",")
        table, prio = fields[0], fields[1]
        match = ",".join(f for f in fields[2:] if not f.startswith("cookie="))
        return table, prio, match

    for p in changed:
        if not p.endswith(".ofctl"):
            continue
        a = {l for l in old.get(p, "").splitlines() if l.strip()}
        b = {l for l in new.get(p, "").splitlines() if l.strip()}
        added, removed = b - a, a - b
        for line in added | removed:
            if int(line.split(",", 1)[0].removeprefix("table=")) not in ingress:
                return False
        if {key(l) for l in added} & {key(l) for l in removed}:
            return False
    return True


def _scale_of(prev: Any, keep_weights: bool) -> Any:
    """The replica counts (and weights) a deployed placement carries: what the
    platform scaled stays scaled (``compiler.scale``)."""
    from compiler.scale import deployed_scale

    if prev is None:
        return None
    return deployed_scale({i: m for i, m, *_ in prev.instances}, dict(prev.weights), keep_weights)


def recompile(
    source: str, placement: str | None, generation: int, unavailable: frozenset[str], scale: Any = None
) -> Any:
    """The controller's compile function (failover, drain, rebalance): the
    deployed site again, built by ``fslang.api.build`` with the deployed
    placement as the previous one (its replica counts and weights kept, unless
    ``scale`` says others), ``generation``, and ``unavailable`` hosts left out.
    Returns a ``relocate.Recompiled``; the platform layer only calls it."""
    from backends.platform.controller.relocate import Recompiled
    from compiler.placement.place import Placement
    from fslang import api

    prev = None
    if placement:
        try:
            prev = Placement.from_json(placement)
        except ValueError:
            prev = None
    if scale is None:
        scale = _scale_of(prev, keep_weights=True)
    b = api.build("the deployed site", source, prev, generation=generation, unavailable=unavailable, scale=scale)
    errors = [f"{d.code}: {d.message}" for d in b.diagnostics if d.severity == "error"]
    stuck = [d.message for d in b.diagnostics if d.code == "W0702"]
    return Recompiled(b.files if b.ok else None, errors, stuck)


#: As backends.platform.controller.server's (not imported here: every `fsc`
#: command would pay for importing the controller; a test keeps them equal).
DEFAULT_LISTEN, DEFAULT_OPENFLOW = "127.0.0.1:8181", "127.0.0.1:6653"


def site_digest(site: Path, optimal: bool) -> str:
    """What `fsc apply` compiles, as one digest: the site file's bytes, the fsc
    version and the options that change the result. The controller keeps the
    digest of the committed site; the same digest again means nothing to change,
    known without compiling. "" when the file cannot be read (the compile words it)."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    try:
        data = site.read_bytes()
    except OSError:
        return ""
    try:
        fsc_version = version("fsc")
    except PackageNotFoundError:
        fsc_version = "unknown"
    head = f"fsc {fsc_version} optimal={int(optimal)}\n".encode()
    return "sha256:" + hashlib.sha256(head + data).hexdigest()


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
