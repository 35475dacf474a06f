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
import hashlib
import json
import os
import stat
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from compiler.check.frontend import FrontendResult, run
from compiler.flowir import FlowEntry
from compiler.ir import Policy as ir_Policy
from compiler.ir import Site
from compiler.lowering import tables as T
from compiler.pipeline import Compiled, compile_site
from compiler.placement.place import Placement
from compiler.scale import Scale, rescale
from fslang import ast as A
from fslang import incremental as inc
from fslang.diagnostics import Diagnostic, sort_key
from fslang.incremental import Summary
from fslang.source import SourceFile, Span

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
            fast = _incremental(name, data, previous_dir, previous, optimal, generation, options)
            if fast is not None:
                return fast
        b = _build(name, data, previous, optimal, generation, render_files, unavailable, scale, pack)
        if cache and render_files and b.ok and b.compiled is not None and b.front is not None and not optimal:
            b.cache = {inc.CACHE: _cache(b, b.front, previous, generation, options).to_text()}
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


# ---------------------------------------------------------------- incremental compile (fslang.incremental)


def _policy_stmts(program: A.Program | None) -> dict[str, A.PolicyStmt]:
    if program is None:
        return {}
    return {st.name.text: st for st in program.statements if isinstance(st, A.PolicyStmt)}


def _names(node: object) -> bool:
    """Does a match expression (or value) name anything (a `set`, a definition)?"""
    if isinstance(node, (A.MRef, A.RefVal)):
        return True
    if isinstance(node, A.MNot):
        return _names(node.expr)
    if isinstance(node, (A.MAnd, A.MOr, A.SetVal)):
        return any(_names(x) for x in node.items)
    return isinstance(node, (A.MHost, A.MNet, A.MPort, A.MEther)) and _names(node.value)


def _record(text: str, p: ir_Policy, stmt: A.PolicyStmt | None, ok: bool) -> inc.PolicyRecord:
    """A policy's cache record: its statement's span from the syntax tree
    (which starts at the name: the `policy` keyword is found before it)."""
    start = text.rfind("policy", 0, stmt.span.start) if stmt is not None else -1
    if stmt is None or start < 0 or text[start + 6 : stmt.span.start].strip():
        return inc.PolicyRecord(p.name, -1, -1, -1, -1, 0, inc.cubes_of(p))  # never used (find_edit)
    ms, me = (stmt.match.span.start, stmt.match.span.end) if stmt.match is not None else (-1, -1)
    me = inc.statement_end(text, me) if me >= 0 else me  # the tree leaves a value's closing bracket out
    ok = ok and not _names(stmt.match)  # a named set's use decides its W0001 (and another policy may use it)
    end = inc.statement_end(text, stmt.span.end)
    return inc.PolicyRecord(p.name, start, end, ms, me, int(ok and ms >= 0), inc.cubes_of(p))


def _cache(b: Build, front: FrontendResult, previous: Placement | None, generation: int, options: str) -> inc.Cache:
    """The incremental cache of a full compile.  A splice keeps the earlier
    placement, which a full compile with ``--previous`` keeps only if placing
    the site from it gives it back: known when this compile was given its
    own result as ``previous`` (placing again to find out would cost as much
    as the placement itself, on every compile; so the first ``--previous``
    compile after a plain one is a full one)."""
    assert b.compiled is not None and b.compiled.steering is not None and b.site is not None and b.summary
    placed = b.compiled.placement
    assert placed is not None
    # no instance: nothing to place, whatever the previous placement
    fixed = (previous is not None and previous.to_json() == placed.to_json()) or not placed.instances
    stmts = _policy_stmts(front.program)
    boxed = inc.boxed(b.compiled.steering)
    policies = [_record(front.source.text, p, stmts.get(p.name), inc.spliceable(p, boxed)) for p in b.site.policies]
    files = {path: hashlib.sha256(text.encode()).hexdigest() for path, text in b.files.items()}
    return inc.Cache(front.source.text, generation, False, files, b.diagnostics, b.summary, policies, fixed, options)


#: why the last ``--previous`` compile was not spliced (None: it was); for tests and FSC_DEBUG=1
last_fallback: str | None = None


def _fallback(why: str) -> Build | None:
    """None (compile in full), saying why."""
    global last_fallback
    last_fallback = why
    if os.environ.get("FSC_DEBUG") == "1":
        sys.stderr.write(f"fsc: --previous: compiling in full: {why}\n")
    return None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _unchanged(name: str, text: str, folder: Path, cache: inc.Cache, previous: Placement) -> Build | None:
    """The same site compiled again from its own output: the same files."""
    files = inc.read_outputs(Path(folder), cache)
    if files is None or files.get("placement.json") != previous.to_json():
        return _fallback("the earlier output's files differ from what the cache says")
    summary = dataclasses.replace(cache.summary, moved="")
    again = dataclasses.replace(cache, summary=summary, placement_fixed=True)
    return Build(
        SourceFile(name, text),
        None,
        None,
        files,
        cache.diagnostics,
        summary,
        {inc.CACHE: again.to_text()},
        incremental=True,
    )


#: The reduced site is compiled for its policy's POLICY entries alone: its
#: placement is never used.  A host no site can name (a NUL in it) makes
#: placement keep the previous one as it stands (its stable mode: nothing
#: moves that need not), instead of searching again (0.1 s).
_PROBE = frozenset({"\0probe"})


def _incremental(
    name: str, data: bytes | str, folder: Path, previous: Placement | None, optimal: bool, generation: int, options: str
) -> Build | None:
    """The build of a one-policy match edit spliced into ``folder``'s output
    (or of the same site again: the earlier files), or None (then compile in
    full)."""
    global last_fallback
    last_fallback = None
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return _fallback("the site is not UTF-8 text")
    else:
        text = data
    cache = inc.read_cache(Path(folder))
    if cache is None or previous is None or cache.generation != generation or optimal:
        return _fallback("no usable cache in the earlier output (missing, damaged, another fsc or other options)")
    if cache.options != options:
        return _fallback("the earlier output was built with other hosts left out or another scale")
    if not cache.placement_fixed:
        return _fallback("the earlier output was not compiled with --previous: placing again may move instances")
    if text == cache.text:
        return _unchanged(name, text, folder, cache, previous)
    edit = inc.find_edit(cache, text)
    if edit is None or "\ufeff" in text or "\x00" in text:
        return _fallback("the change is not inside one spliceable policy's match")
    old = cache.policies[edit.index]
    if any(d.span.end > old.start and d.span.start < old.end for d in cache.diagnostics):
        return _fallback("the policy had diagnostics")
    others = inc.CubeGroups(cache, edit.index)
    if others.meet(old.cubes):
        return _fallback("the policy's old match overlaps another policy")
    reduced = _compile(run(name, edit.reduced), previous, False, generation, False, _PROBE)
    c, r_site = reduced.compiled, reduced.site
    new_end = old.end + edit.delta
    if c is None or r_site is None or c.steering is None or not reduced.ok or len(r_site.policies) != 1:
        return _fallback("the reduced site does not compile")
    p = r_site.policies[0]
    stmt = _policy_stmts(reduced.front.program if reduced.front else None).get(p.name)
    record = _record(text, p, stmt, inc.spliceable(p, inc.boxed(c.steering)))
    want = (old.name, old.start, new_end, old.match_start, old.match_end + edit.delta, True)
    if (record.name, record.start, record.end, record.match_start, record.match_end, record.spliceable) != want:
        return _fallback("the edited statement is no longer the same policy with a spliceable match")
    if any(d.span.end > old.start and d.span.start < new_end for d in reduced.diagnostics):
        return _fallback("the edited policy has diagnostics")
    if others.meet(record.cubes):
        return _fallback("the policy's new match overlaps another policy")
    files = inc.read_outputs(Path(folder), cache)
    if files is None or files.get("placement.json") != previous.to_json():
        return _fallback("the earlier output's files differ from what the cache says")
    gen_bit = generation << T.GENERATION_COOKIE_BIT
    r_cookie, cookie = T.policy_cookie(0, 0) | gen_bit, T.policy_cookie(edit.index, 0) | gen_bit
    mine: dict[str, list[FlowEntry]] = {}
    for name_, tables in c.tables.items():
        for e in tables.entries:
            if (e.cookie >> 16) & 0xFFFF == 1:
                if e.table_id != T.POLICY or e.cookie != r_cookie:
                    return _fallback("the policy has entries outside its POLICY table")
                mine.setdefault(name_, []).append(e)
    rules: dict[str, int] = {}
    carry: dict[str, list[str]] = {}
    out = dict(files)
    for sw in r_site.switches:
        ofctl, json_path = f"openflow/{sw.name}.ofctl", f"openflow/{sw.name}.json"
        spliced = inc.splice_switch(files[ofctl], files[json_path], cookie, mine.get(sw.name, []), sw.dpid)
        if spliced is None:
            return _fallback("a switch's rules cannot be spliced")
        out[ofctl], out[json_path], n_old, n_new = spliced
        n = out[ofctl].count("\n")
        if sw.tcam is not None and n > sw.tcam:
            return _fallback("a switch would pass its tcam")
        if n_old or n_new:
            rules[sw.name] = n
            carry[sw.name] = inc.json_cannot_carry(out[ofctl])
    changed = {path: _sha256(t) for path, t in out.items() if t is not files[path]}
    plan = inc.plan_json(files["plan.json"], cache.files, changed, rules, carry)
    if plan is None:
        return _fallback("plan.json cannot be updated in place")
    out["plan.json"] = plan
    source = SourceFile(name, text)
    diags = [
        d
        if d.span.start < old.end
        else dataclasses.replace(d, span=Span(d.span.start + edit.delta, d.span.end + edit.delta))
        for d in cache.diagnostics
    ]
    switches = tuple((n, rules.get(n, r), t) for n, r, t in cache.summary.switches)
    summary = dataclasses.replace(cache.summary, switches=switches, moved="")
    policies = [q if i < edit.index else q.shifted(edit.delta) for i, q in enumerate(cache.policies)]
    policies[edit.index] = record
    hashes = {**cache.files, **changed, "plan.json": _sha256(plan)}
    new_cache = inc.Cache(text, generation, False, hashes, diags, summary, policies, True, options)
    return Build(source, None, None, out, diags, summary, {inc.CACHE: new_cache.to_text()}, incremental=True)
