"""The `fsc` command line (Typer + Rich).  Thin: it reads files, calls the
pure stages and prints; exit codes follow the CLI contract (0 ok, 1 input
errors, 2 usage, 3 platform)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from fslang.diagnostics import render_json, render_text, summary
from fslang.frontend import FrontendResult, load

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="fsc - the Flowstream compiler: steer flows through middlebox modules on an "
                       "OpenFlow platform.")


@app.callback()
def _root() -> None:
    """fsc - the Flowstream compiler."""


class Format(str, Enum):
    text = "text"
    json = "json"


def report(result: FrontendResult, fmt: Format) -> None:
    """Print diagnostics: text to stderr (with a summary), JSON to stdout."""
    if fmt is Format.json:
        sys.stdout.write(render_json(result.diagnostics, result.source))
        return
    if result.diagnostics:
        sys.stderr.write(render_text(result.diagnostics, result.source))
        sys.stderr.write(f"{result.source.name}: {summary(result.diagnostics)}\n")


@app.command("check")
def check_cmd(site: Path = typer.Argument(..., help="the site file (.fs)"),
              format: Format = typer.Option(Format.text, "--format", help="text or json")) -> None:
    """Parse and check SITE; print every problem (nothing is written)."""
    result = load(site)
    report(result, format)
    if format is Format.text and result.ok:
        sys.stderr.write(f"{result.source.name}: ok ({summary(result.diagnostics)})\n")
    raise typer.Exit(0 if result.ok else 1)


def main() -> None:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":
    main()
