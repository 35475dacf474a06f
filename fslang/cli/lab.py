"""`fsc lab up / down / exec`: a whole site on this machine (needs root);
registered by :mod:`fslang.cli`. Exit codes: 0 ok, 1 the site has errors,
2 usage, 3 the lab could not be built or is not there."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

lab_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Run a whole site on this machine: OVS bridges, namespaces, controller, agents.",
)


def _fail(msg: str, code: int = 3) -> None:
    sys.stderr.write(f"fsc lab: {msg}\n")
    raise typer.Exit(code)


@lab_app.command("up")
def up_cmd(
    site: Path = typer.Argument(..., help="the site file (.fs)"),
    name: str = typer.Option(None, "--name", help="lab name (default: the site's name)"),
    static: bool = typer.Option(
        False,
        "--static",
        help="no controller or agents: load the compiled rules and run the Click configurations directly",
    ),
) -> None:
    """Build the site on this machine and deploy it; prints what was built."""
    from backends.platform.lab.lab import CompiledSite, describe, up
    from backends.platform.lab.state import LabError
    from fslang import api
    from fslang.cli import report

    if not site.is_file():
        _fail(f"no such site file: {site}", 2)
    b = api.build_file(site)
    report(b.source, b.diagnostics)
    if not b.ok:
        _fail(f"{site} has errors; nothing was built", 1)
    assert b.site is not None and b.compiled is not None
    try:
        state = up(site, CompiledSite(b.site, b.compiled, b.files), name, "static" if static else "platform")
    except LabError as e:
        _fail(str(e), 3)
    sys.stdout.write(describe(state) + "\n")


@lab_app.command("down")
def down_cmd(name: str = typer.Option(None, "--name", help="lab name (default: the only lab that is up)")) -> None:
    """Remove the lab: processes, namespaces, links, bridges, its run directory."""
    from backends.platform.lab.lab import down, resolve
    from backends.platform.lab.state import LabError

    if os.geteuid() != 0:
        _fail("fsc lab needs root: run it with sudo")
    try:
        lab = resolve(name)
        problems = down(lab)
    except LabError as e:
        _fail(str(e))
    if problems:
        _fail("removed what it could; left over: " + "; ".join(problems))
    sys.stdout.write(f"lab {lab} is down; nothing left behind\n")


@lab_app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_cmd(
    node: str = typer.Argument(..., help="an edge, host or box of the site, or `ovs` (the switches)"),
    cmd: list[str] = typer.Argument(None, help="the command (after --); default: a shell"),
    name: str = typer.Option(None, "--name", help="lab name (default: the only lab that is up)"),
) -> None:
    """Run CMD in NODE's network namespace; exits with CMD's exit code."""
    from backends.platform.lab.lab import exec_argv
    from backends.platform.lab.state import LabError

    if os.geteuid() != 0:
        _fail("fsc lab needs root: run it with sudo")
    try:
        argv = exec_argv(name, node, list(cmd or []))
    except LabError as e:
        _fail(str(e))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        _fail(f"cannot run {argv[0]}: {e}")


def register(app: typer.Typer) -> None:
    """Add the `lab` sub-app to the `fsc` app."""
    from fslang.cli import labfaults  # fail / heal

    labfaults.add(lab_app)
    app.add_typer(lab_app, name="lab")
