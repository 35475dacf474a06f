"""The one orchestrator: load -> check -> place -> compile -> render.

Every command that needs a compiled site comes here (``fsc check``,
``compile``, ``trace``, ``graph``, ``plan``/``apply``, ``lab up``), so what
``check`` accepts is exactly what ``compile`` accepts.  Nothing here writes:
:func:`build` returns diagnostics and the rendered files; the caller decides
where they go.  Reading the site file is the only I/O, bounded so that a
device or a pipe that never ends costs a diagnostic, not the memory.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from compiler.check.frontend import FrontendResult, run
from compiler.ir import Site
from compiler.pipeline import Compiled, compile_site
from compiler.placement.place import Placement
from compiler.scale import Scale, rescale
from fslang import incremental as inc
from fslang.diagnostics import Diagnostic, sort_key
from fslang.incremental import Summary
from fslang.source import SourceFile

__all__ = [
    "Build",
    "Placement",
    "PreviousUnreadable",
    "SourceFile",
    "build",
    "build_file",
    "load",
    "previous_placement",
    "read_source",
]

MAX_FILE_BYTES = 4 * 2**20  # ~40,000 policies; larger input is refused up front, in milliseconds


@dataclass
class Build:
    """What a site compiles to, or why not: the source, the checked site,
    the compiled platform and its files (empty unless everything passed)."""

    source: SourceFile
    site: Site | None
    compiled: Compiled | None
    files: dict[str, str] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    #: what `fsc compile` prints; set when the files are rendered
    summary: Summary | None = None
    #: fsc's own files for the output folder (the incremental cache), apart from ``files``
    cache: dict[str, str] = field(default_factory=dict)
    #: the parsed and checked site (the cache reads its syntax tree)
    front: FrontendResult | None = field(default=None, repr=False)
    #: the files came from splicing the ``--previous`` output (fslang.incremental), not a full compile
    incremental: bool = False

    @property
    def ok(self) -> bool:
        compiled = self.compiled is not None or self.incremental
        return compiled and not any(d.severity == "error" for d in self.diagnostics)


def read_source(path: Path | str) -> tuple[str, bytes | None, list[Diagnostic]]:
    """(display name, bytes or None, diagnostics) of a site file.  At most
    MAX_FILE_BYTES + 1 bytes are ever read, whatever the file is (a regular
    file, a character device, a pipe); a directory or a missing file is a
    diagnostic."""
    name = str(path)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            return name, None, [_cannot_read(f"{name} is a directory", "give the site file (SITE.fs), not a folder")]
        if stat.S_ISREG(st.st_mode) and st.st_size > MAX_FILE_BYTES:
            return name, None, [_too_big(f"the file is {st.st_size:,} bytes")]
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        return (
            name,
            None,
            [_cannot_read(f"cannot read the file: {err.strerror or err}", "check the path and its permissions")],
        )
    if len(data) > MAX_FILE_BYTES:
        return name, None, [_too_big("the input goes on past the limit")]
    return name, data, []


def _cannot_read(message: str, hint: str) -> Diagnostic:
    return Diagnostic("E0005", message, hint=hint)


def _too_big(what: str) -> Diagnostic:
    return Diagnostic(
        "E0005",
        f"{what}; fsc reads site files of up to {MAX_FILE_BYTES:,} bytes",
        hint="check that this is the right file; a site of 40,000 policies fits in the limit",
    )


class PreviousUnreadable(Exception):
    """``--previous DIR`` holds no readable placement."""


def previous_placement(out_dir: Path | str) -> Placement:
    """The placement of an earlier output folder (``--previous``)."""
    path = Path(out_dir) / "placement.json"
    try:
        return Placement.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise PreviousUnreadable(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from None
    except (ValueError, KeyError, TypeError) as err:
        raise PreviousUnreadable(f"{path} is not an fsc placement: {err}") from None


def load(path: Path | str) -> FrontendResult:
    """Read, parse and check a site file (no placement or compilation)."""
    name, data, diags = read_source(path)
    if data is None:
        return FrontendResult(SourceFile(name, ""), None, diags)
    return run(name, data)


def build(
    name: str,
    data: bytes | str,
    previous: Placement | None = None,
    optimal: bool = False,
    generation: int = 0,
    render_files: bool = True,
    unavailable: frozenset[str] = frozenset(),
    scale: Mapping[str, Scale] | None = None,
    pack: bool = False,
    previous_dir: Path | None = None,
    cache: bool = False,
) -> Build:
    """Check, place, compile and (with ``render_files``) render a site's text;
    ``unavailable``: hosts placement must not use (down or drained);
    ``scale``: the platform's replica counts and weights (``compiler.scale``);
    ``pack``: place on the fewest hosts whatever the site's `placement` says
    (`fsc plan --consolidate`); ``cache``: also make the incremental cache
    (``Build.cache``, `fsc compile`), and with ``previous_dir`` (the earlier
    output, whose placement is ``previous``) splice a one-policy edit into
    it when :mod:`fslang.incremental` can show the result equals this full
    compile's."""
    options = _options(unavailable, scale)
    with _no_cycle_collection():
        if cache and previous_dir is not None and render_files and not pack:
            from fslang import incremental_build  # it imports this module: loaded when first needed

            fast = incremental_build.incremental(name, data, previous_dir, previous, optimal, generation, options)
            if fast is not None:
                return fast
        b = _build(name, data, previous, optimal, generation, render_files, unavailable, scale, pack)
        if cache and render_files and b.ok and b.compiled is not None and b.front is not None and not optimal:
            from fslang import incremental_build

            b.cache = {inc.CACHE: incremental_build.make_cache(b, b.front, previous, generation, options).to_text()}
        return b


def _options(unavailable: frozenset[str], scale: Mapping[str, Scale] | None) -> str:
    """The platform's options of a build as the cache records them ("" for
    none): a splice is made only into an output built with the same ones
    (`fsc apply` passes the hosts that are down and the deployed scale)."""
    if not unavailable and not scale:
        return ""
    doc = {
        "unavailable": sorted(unavailable),
        "scale": {
            m: [s.replicas, list(s.weights) if s.weights is not None else None] for m, s in (scale or {}).items()
        },
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """A compile makes millions of small objects that form no cycles (syntax
    trees, header spaces, flow entries); Python's cycle collector would walk
    the whole growing heap again and again (half the CPU time of a 10,000
    policy site).  Off for the build, back on afterwards; what the build
    made is moved to the oldest generation first (``freeze`` then
    ``unfreeze``: two list splices), or the first young-generation pass
    after it would walk every object made since the collector went off
    (1.7 s after a 10,000-policy compile).  It is looked at again only by a
    full collection, as any long-lived object is."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _build(
    name: str,
    data: bytes | str,
    previous: Placement | None,
    optimal: bool,
    generation: int,
    render_files: bool,
    unavailable: frozenset[str],
    scale: Mapping[str, Scale] | None = None,
    pack: bool = False,
) -> Build:
    return _compile(run(name, data), previous, optimal, generation, render_files, unavailable, scale, pack)


def _compile(
    front: FrontendResult,
    previous: Placement | None,
    optimal: bool,
    generation: int,
    render_files: bool,
    unavailable: frozenset[str] = frozenset(),
    scale: Mapping[str, Scale] | None = None,
    pack: bool = False,
) -> Build:
    if front.site is None:
        return Build(front.source, None, None, diagnostics=front.diagnostics)
    site = rescale(front.site, scale or {})
    if pack:
        site = dataclasses.replace(site, placement="fewest")
    compiled = compile_site(site, previous, optimal, generation, unavailable)
    diags = sorted(front.diagnostics + compiled.diagnostics, key=sort_key)
    if not compiled.ok:
        return Build(front.source, front.site, None, diagnostics=diags)
    files = render(compiled) if render_files else {}
    summary = inc.summary_of(compiled) if render_files else None
    return Build(front.source, front.site, compiled, files, diags, summary, front=front)


def render(compiled: Compiled) -> dict[str, str]:
    """The output files (the emitters are imported here, when first needed:
    an incremental compile renders none of them)."""
    from backends.emit.output import render as render_all

    return render_all(compiled)


def build_file(
    path: Path | str,
    previous: Placement | None = None,
    optimal: bool = False,
    generation: int = 0,
    render_files: bool = True,
    previous_dir: Path | None = None,
    cache: bool = False,
) -> Build:
    """:func:`build` of a site file."""
    name, data, diags = read_source(path)
    if data is None:
        return Build(SourceFile(name, ""), None, None, diagnostics=diags)
    return build(name, data, previous, optimal, generation, render_files, previous_dir=previous_dir, cache=cache)
