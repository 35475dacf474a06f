"""`fsc lab fail HOST` / `fsc lab heal HOST` (fault injection; needs root) and
`fsc lab power HOST on|off` (the lab's power hook),
added to the `fsc lab` app by :mod:`fslang.cli.lab`. Exit codes: 0 done,
2 usage, 3 the lab cannot do it."""

from __future__ import annotations

import os
import sys

import typer

from fslang.cli.options import LabName


def _fail(msg: str, code: int = 3) -> typer.Exit:
    sys.stderr.write(f"fsc lab: {msg}\n")
    return typer.Exit(code)


def add(lab_app: typer.Typer) -> None:
    @lab_app.command("fail")
    def fail_cmd(
        host: str = typer.Argument(..., help="a module host of the lab's site"),
        name: LabName = None,
    ) -> None:
        """Crash HOST as a real one would: its agent and every instance killed at once, its links down."""
        from backends.platform.lab.faults import fail
        from backends.platform.lab.state import LabError

        if os.geteuid() != 0:
            raise _fail("fsc lab needs root: run it with sudo")
        try:
            sys.stdout.write(fail(name, host) + "\n")
        except LabError as e:
            raise _fail(str(e)) from None

    @lab_app.command("heal")
    def heal_cmd(
        host: str = typer.Argument(..., help="a host `fsc lab fail` crashed"),
        name: LabName = None,
    ) -> None:
        """Bring HOST back, empty, with a fresh agent (returns once the controller hears from it)."""
        from backends.platform.lab.faults import heal
        from backends.platform.lab.state import LabError

        if os.geteuid() != 0:
            raise _fail("fsc lab needs root: run it with sudo")
        try:
            sys.stdout.write(heal(name, host) + "\n")
        except LabError as e:
            raise _fail(str(e)) from None

    @lab_app.command("power")
    def power_cmd(
        host: str = typer.Argument(..., help="a module host of the lab's site"),
        action: str = typer.Argument(..., help="on or off"),
        name: LabName = None,
    ) -> None:
        """The lab's power hook (`fsc controller --power-hook 'fsc lab power {host} {action}'`):
        off stops HOST's namespace as a powered-off machine (agent and instances gone, links
        down, as `fail`); on starts it again, empty, with a fresh agent (as `heal`)."""
        from backends.platform.lab.faults import fail, failed_hosts, heal
        from backends.platform.lab.lab import resolve
        from backends.platform.lab.state import LabError, LabState

        if action not in ("on", "off"):
            raise _fail(f"power: `{action}` is not an action; use on or off", 2)
        if os.geteuid() != 0:
            raise _fail("fsc lab needs root: run it with sudo")
        try:
            off = host in failed_hosts(LabState.load(resolve(name)))
            if action == "off":
                sys.stdout.write((f"host {host} is off already" if off else fail(name, host)) + "\n")
            else:
                sys.stdout.write((heal(name, host) if off else f"host {host} is on already") + "\n")
        except LabError as e:
            raise _fail(str(e)) from None
