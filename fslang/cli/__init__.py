"""The `fsc` command line (Typer + Rich).  Thin: it reads files, calls the
pure stages and prints; exit codes follow the CLI contract (0 ok, 1 input
errors, 2 usage, 3 platform)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from compiler.check.frontend import FrontendResult, load
from fslang.diagnostics import render_json, render_text, summary

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="fsc - the Flowstream compiler: steer flows through middlebox modules on an OpenFlow platform.",
)


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
def check_cmd(
    site: Path = typer.Argument(..., help="the site file (.fs)"),
    format: Format = typer.Option(Format.text, "--format", help="text or json"),
) -> None:
    """Parse and check SITE; print every problem (nothing is written)."""
    result = load(site)
    report(result, format)
    if format is Format.text and result.ok:
        sys.stderr.write(f"{result.source.name}: ok ({summary(result.diagnostics)})\n")
    raise typer.Exit(0 if result.ok else 1)


def _compiled(
    site: Path, previous: Path | None = None, optimal: bool = False, fmt: Format = Format.text, generation: int = 0
):
    """Front end + compile; prints diagnostics; exits 1 on errors."""
    from compiler.pipeline import compile_site
    from compiler.placement.place import Placement

    result = load(site)
    if not result.ok:
        report(result, fmt)
        raise typer.Exit(1)
    prev = None
    if previous is not None:
        try:
            prev = Placement.from_json((previous / "placement.json").read_text())
        except (OSError, ValueError, KeyError) as err:
            sys.stderr.write(
                f"fsc: cannot read {previous / 'placement.json'}: {err}\n"
                "hint: pass the output directory of an earlier `fsc compile`\n"
            )
            raise typer.Exit(2) from None
    compiled = compile_site(result.site, prev, optimal, generation)
    result.diagnostics = result.diagnostics + compiled.diagnostics
    if result.diagnostics:
        report(result, fmt)
    if not compiled.ok:
        raise typer.Exit(1)
    return result, compiled


@app.command("compile")
def compile_cmd(
    site: Path = typer.Argument(..., help="the site file (.fs)"),
    out: Path = typer.Option(None, "-o", "--out", help="output directory (default build/SITE/)"),
    previous: Path = typer.Option(None, "--previous", help="an earlier output directory: keep placement stable"),
    optimal: bool = typer.Option(False, "--optimal", help="exact placement (small sites)"),
    generation: int = typer.Option(
        0,
        "--generation",
        min=0,
        max=1,
        help="update generation (0 or 1) folded into tags, entries and cookies; `fsc apply` alternates it",
    ),
) -> None:
    """Check, place and compile SITE into OpenFlow rules and host artifacts."""
    from backends.emit.output import render, write

    _, compiled = _compiled(site, previous, optimal, generation=generation)
    files = render(compiled)
    target = out or Path("build") / site.stem
    write(target, files)
    from fslang.cli.summary import summary_text

    sys.stdout.write(summary_text(compiled, target, files))


@app.command("trace")
def trace_cmd(
    site: Path = typer.Argument(..., help="the site file (.fs)"),
    packet: list[str] = typer.Argument(..., help="from EDGE PROTO SRC[:SPORT] -> DST[:DPORT] [vlan N]"),
    format: Format = typer.Option(Format.text, "--format", help="text or json"),
) -> None:
    """Follow one packet through the compiled tables and host plumbing."""
    import json

    from compiler.verification.platform_sim import Platform
    from fslang.cli.trace_args import PacketSyntaxError, parse_packet

    try:
        edge, pkt = parse_packet(packet)
    except PacketSyntaxError as err:
        sys.stderr.write(
            f"fsc trace: {err}\nexample: fsc trace site.fs from internet tcp 203.0.113.7:40000 -> 10.0.1.20:80\n"
        )
        raise typer.Exit(2) from None
    _, compiled = _compiled(site, fmt=format)
    if edge not in {e.name for e in compiled.site.edges}:
        names = ", ".join(e.name for e in compiled.site.edges)
        sys.stderr.write(f"fsc trace: the site has no edge `{edge}` (edges: {names})\n")
        raise typer.Exit(2) from None
    tr = Platform(compiled).trace(pkt, edge)
    if format is Format.json:
        sys.stdout.write(json.dumps(tr.to_json(), indent=2, sort_keys=False) + "\n")
        return
    from fslang.cli.summary import trace_text

    sys.stdout.write(trace_text(tr))


@app.command("graph")
def graph_cmd(
    site: Path = typer.Argument(..., help="the site file (.fs)"),
    out: Path = typer.Option(..., "-o", "--out", help="the picture: FILE.svg, FILE.png or FILE.dot"),
) -> None:
    """Draw SITE: switches, hosts with their placed instances, edges, boxes and every policy's path."""
    from backends.emit.graph.render import FORMATS, DotFailed, DotMissing, render_dot, run_dot

    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        sys.stderr.write(
            f"fsc graph: cannot tell the format of `{out}` from its extension; use FILE.svg, FILE.png or FILE.dot\n"
        )
        raise typer.Exit(2) from None
    _, compiled = _compiled(site)
    text = render_dot(compiled)
    fmt = FORMATS[suffix]
    if fmt is None:
        data = text.encode("utf-8")
    else:
        try:
            data = run_dot(text, fmt)
        except DotMissing as err:
            sys.stderr.write(
                f"fsc graph: {err}\nhint: {suffix} needs Graphviz (`apt-get install graphviz`); "
                f"or write the graph with `-o {out.with_suffix('.dot')}` and lay it out elsewhere\n"
            )
            raise typer.Exit(3) from None
        except DotFailed as err:
            sys.stderr.write(f"fsc graph: {err}\n")
            raise typer.Exit(3) from None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    except OSError as err:
        sys.stderr.write(f"fsc graph: cannot write {out}: {err.strerror or err}\n")
        raise typer.Exit(3) from None
    sys.stderr.write(f"wrote {out}\n")


def _register_platform() -> None:
    from fslang.cli import agent as cli_agent
    from fslang.cli import controller as cli_controller
    from fslang.cli import lab as cli_lab

    for mod in (cli_controller, cli_agent, cli_lab):
        mod.register(app)


_register_platform()


def main() -> None:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":
    main()
