"""The `fsc` command line (Typer).  Thin: every command asks :mod:`fslang.api`
for the compiled site and prints; exit codes follow the CLI contract (0 ok,
1 input errors, 2 usage, 3 platform or internal error).

Standard output carries only what a command was asked for (the summary, the
trace, the JSON document); diagnostics go to standard error, or inside the
JSON document with ``--format json``.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import typer

from fslang.cli._lazy import api  # the pipeline is imported by the commands that compile, not by every `fsc`
from fslang.cli.options import Format, Optimal, SiteFile, TextOrJson
from fslang.diagnostics import Diagnostic, render_json, render_text, to_json_obj
from fslang.diagnostics import summary as counts  # fslang.cli.summary is a submodule
from fslang.source import SourceFile

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="fsc - the Flowstream compiler: steer flows through middlebox modules on an OpenFlow platform.",
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="on an internal error, show its traceback"),
) -> None:
    """fsc - the Flowstream compiler."""


def fail(command: str, message: str, code: int, hint: str | None = None) -> NoReturn:
    """Say what went wrong (and what to do) on standard error, then exit."""
    sys.stderr.write(f"fsc {command}: {message}\n" + (f"hint: {hint}\n" if hint else ""))
    raise typer.Exit(code)


def report(source: SourceFile, diagnostics: list[Diagnostic]) -> None:
    """Diagnostics as text on standard error, with a summary line."""
    if diagnostics:
        sys.stderr.write(render_text(diagnostics, source))
        sys.stderr.write(f"{source.name}: {counts(diagnostics)}\n")


def _previous(previous: Path | None) -> api.Placement | None:
    if previous is None:
        return None
    try:
        return api.previous_placement(previous)
    except api.PreviousUnreadable as err:
        fail("compile", str(err), 2, "pass the output folder of an earlier `fsc compile`")


def _built(
    command: str, site: Path, fmt: Format = Format.text, render_files: bool = True, **options: object
) -> api.Build:
    """The compiled site, or exit 1 after printing why not."""
    b = api.build_file(site, render_files=render_files, **options)  # type: ignore[arg-type]
    if not b.ok:
        if fmt is Format.json:
            doc = {"error": "the site has errors", "diagnostics": [to_json_obj(d, b.source) for d in b.diagnostics]}
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        else:
            report(b.source, b.diagnostics)
        raise typer.Exit(1)
    if fmt is Format.text:
        report(b.source, b.diagnostics)
    return b


@app.command("check")
def check_cmd(
    site: SiteFile,
    format: TextOrJson = Format.text,
) -> None:
    """Check SITE as `compile` would (placement and rule budgets included); print every problem, write nothing."""
    global _BATCH
    _BATCH = True
    # Renders too, and drops the files: the emitters keep refusals of their own (ClickUnsupported, the VM
    # manifest's ValueError, OpenFlow's UnsupportedError) behind the check-time diagnostics, and check must
    # fail wherever compile does (tests/test_hostile.py: test_check_renders_as_compile_does).
    b = api.build_file(site)
    if format is Format.json:
        sys.stdout.write(render_json(b.diagnostics, b.source))
    else:
        report(b.source, b.diagnostics)
        if b.ok:
            sys.stderr.write(f"{b.source.name}: ok ({counts(b.diagnostics)})\n")
    raise typer.Exit(0 if b.ok else 1)


@app.command("compile")
def compile_cmd(
    site: SiteFile,
    out: Path = typer.Option(None, "-o", "--out", help="output folder (default build/SITE/)"),
    previous: Path = typer.Option(None, "--previous", help="an earlier output folder: keep placement stable"),
    optimal: Optimal = False,
    force: bool = typer.Option(
        False, "--force", help="replace an earlier fsc output even if files were added to it (never other folders)"
    ),
    generation: int = typer.Option(
        0,
        "--generation",
        min=0,
        max=1,
        help="update generation (0 or 1) folded into tags, entries and cookies; `fsc apply` alternates it",
    ),
) -> None:
    """Check, place and compile SITE into OpenFlow rules and host artifacts."""
    global _BATCH
    _BATCH = True
    from backends.emit.write import OutputRefused, check_target, write
    from fslang.cli.summary import summary_text

    target = out or Path("build") / site.stem
    try:
        check_target(target, force)  # refuse before the work, not after
    except OutputRefused as err:
        fail("compile", str(err), 1, err.hint)
    b = _built(
        "compile",
        site,
        previous=_previous(previous),
        optimal=optimal,
        generation=generation,
        previous_dir=previous,
        cache=True,
    )
    try:
        write(target, {**b.files, **b.cache}, force)
    except OutputRefused as err:
        fail("compile", str(err), 1, err.hint)
    assert b.summary is not None
    sys.stdout.write(summary_text(b.summary, target, b.files))


@app.command("trace")
def trace_cmd(
    site: SiteFile,
    packet: list[str] = typer.Argument(..., help="from EDGE PROTO SRC[:SPORT] -> DST[:DPORT] [vlan N]"),
    format: TextOrJson = Format.text,
) -> None:
    """Follow one packet through the compiled tables and host plumbing."""
    from compiler.verification.platform_sim import Platform
    from fslang.cli.trace_args import PacketSyntaxError, parse_packet

    try:
        edge, pkt = parse_packet(packet)
    except PacketSyntaxError as err:
        fail("trace", str(err), 2, "write it like: from internet tcp 203.0.113.7:40000 -> 10.0.1.20:80 (in quotes)")
    b = _built("trace", site, format, render_files=False)
    assert b.compiled is not None
    if edge not in {e.name for e in b.compiled.site.edges}:
        names = ", ".join(e.name for e in b.compiled.site.edges)
        fail("trace", f"the site has no edge `{edge}`", 2, f"the edges are: {names}")
    tr = Platform(b.compiled).trace(pkt, edge)
    if format is Format.json:
        doc = tr.to_json()
        doc["diagnostics"] = [to_json_obj(d, b.source) for d in b.diagnostics]
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False) + "\n")
        return
    from fslang.cli.summary import trace_text

    sys.stdout.write(trace_text(tr))


@app.command("graph")
def graph_cmd(
    site: SiteFile,
    out: Path = typer.Option(..., "-o", "--out", help="the picture: FILE.svg, FILE.png or FILE.dot"),
) -> None:
    """Draw SITE: switches, hosts with their placed instances, edges, boxes and every policy's path."""
    from backends.emit.graph.render import FORMATS, DotFailed, DotMissing, render_dot, run_dot

    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        fail("graph", f"cannot tell the format of `{out}` from its extension", 2, "use FILE.svg, FILE.png or FILE.dot")
    b = _built("graph", site, render_files=False)
    assert b.compiled is not None
    text = render_dot(b.compiled)
    fmt = FORMATS[suffix]
    if fmt is None:
        data = text.encode("utf-8")
    else:
        try:
            data = run_dot(text, fmt)
        except DotMissing as err:
            fail(
                "graph",
                str(err),
                3,
                f"{suffix} needs Graphviz (`apt-get install graphviz`); or write the graph with "
                f"`-o {out.with_suffix('.dot')}` and lay it out elsewhere",
            )
        except DotFailed as err:
            fail("graph", str(err), 3)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    except OSError as err:
        fail("graph", f"cannot write {out}: {err.strerror or err}", 1, "choose a file you can write with -o")
    sys.stderr.write(f"wrote {out}\n")


def _register_platform() -> None:
    from fslang.cli import agent, controller, lab, scaling

    for mod in (controller, scaling, agent, lab):
        mod.register(app)


_register_platform()


def main() -> None:
    """The `fsc` entry point: any exception that escapes a command is a bug,
    reported as one line (the traceback only with --debug or FSC_DEBUG=1)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 (the one top-level guard)
        if "--debug" in sys.argv[1:] or os.environ.get("FSC_DEBUG") == "1":
            traceback.print_exc()
        sys.stderr.write(
            f"fsc: internal error: {type(err).__name__}: {err}\n"
            "this is a bug in fsc, not in your input; rerun with --debug for the traceback and report it\n"
        )
        sys.exit(3)


_BATCH = False  # set by commands whose process ends with them (compile, check): see run()


def run() -> None:
    """`fsc` as a process: :func:`main`, and after a batch command an exit
    that skips tearing down the heap (freeing the millions of objects of a
    10,000-policy compile one by one costs seconds; the files are written
    and closed, the streams flushed, atexit handlers run)."""
    try:
        main()
        code: str | int | None = 0
    except SystemExit as err:
        if not _BATCH:
            raise
        code = err.code
    if not _BATCH or not (code is None or isinstance(code, int)):
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code or 0)


if __name__ == "__main__":
    run()
