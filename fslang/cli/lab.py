"""`fsc lab up / down / exec`: a whole site on this machine (needs root);
registered by :mod:`fslang.cli`. Exit codes: 0 ok, 1 the site has errors,
2 usage (a bad lab name, an unknown node, several labs and no --name, a
command that does not exist), 3 the lab could not be built, is not there or
could not be removed completely; `exec` otherwise exits with the command's code.
The code comes from the class of the LabError, never from its message."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

from fslang.cli.options import LabName, SiteFile

lab_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Run a whole site on this machine: OVS bridges, namespaces, controller, agents.",
)


def _fail(msg: str, code: int) -> NoReturn:
    sys.stderr.write(f"fsc lab: {msg}\n")
    raise typer.Exit(code)


@contextmanager
def _lab_errors() -> Iterator[None]:
    """A LabError becomes its one-line message and the exit code its class
    carries (2 for a wrong request, 3 for the platform); never the message
    text decides."""
    from backends.platform.lab.state import LabError

    try:
        yield
    except LabError as e:
        _fail(str(e), e.exit_code)


@lab_app.command("up")
def up_cmd(
    site: SiteFile,
    name: str = typer.Option(None, "--name", help="lab name (default: the site's name)"),
    static: bool = typer.Option(
        False,
        "--static",
        help="no controller or agents: load the compiled rules and run the Click configurations directly",
    ),
) -> None:
    """Build the site on this machine and deploy it; prints what was built."""
    from backends.platform.lab.lab import CompiledSite, describe, up
    from fslang import api
    from fslang.cli import report

    if not site.is_file():
        _fail(f"no such site file: {site}", 2)
    b = api.build_file(site)
    report(b.source, b.diagnostics)
    if not b.ok:
        _fail(f"{site} has errors; nothing was built", 1)
    assert b.site is not None and b.compiled is not None
    with _lab_errors():
        state = up(site, CompiledSite(b.site, b.compiled, b.files), name, "static" if static else "platform")
    sys.stdout.write(describe(state) + "\n")


@lab_app.command("down")
def down_cmd(name: LabName = None) -> None:
    """Remove the lab: processes, namespaces, links, bridges, its run directory."""
    from backends.platform.lab.lab import down, resolve
    from backends.platform.lab.nodes import require_root

    with _lab_errors():
        require_root()
        lab = resolve(name)
        problems = down(lab)
    if problems:
        _fail(f"removed what it could of lab {lab}; left over: " + "; ".join(problems), 3)
    sys.stdout.write(f"lab {lab} is down; nothing left behind\n")


@lab_app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_cmd(
    node: str = typer.Argument(..., help="an edge, host or box of the site, or `ovs` (the switches)"),
    cmd: list[str] = typer.Argument(None, help="the command (after --); default: a shell"),
    name: LabName = None,
) -> None:
    """Run CMD in NODE's network namespace (only standard input, output and error open);
    exits with CMD's exit code."""
    from backends.platform.lab.lab import exec_argv
    from backends.platform.lab.nodes import require_root

    with _lab_errors():
        require_root()
        argv = exec_argv(name, node, list(cmd or []))
    sys.stdout.flush()
    sys.stderr.flush()
    # only standard input, output and error go on (as with sudo): an inherited descriptor, e.g. the
    # lock of `flock LOCK fsc lab exec ... &`, would otherwise live as long as a backgrounded CMD
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    try:
        os.execv(argv[0], argv)
    except OSError as e:
        _fail(f"cannot run {argv[0]}: {e.strerror or e}", 3)


def register(app: typer.Typer) -> None:
    """Add the `lab` sub-app to the `fsc` app."""
    from fslang.cli import labfaults  # fail / heal

    labfaults.add(lab_app)
    app.add_typer(lab_app, name="lab")
