"""The incremental path of :func:`fslang.api.build` (``fsc compile
--previous``): the cache a full compile leaves, and the build of a
one-policy edit spliced into the earlier output when
:mod:`fslang.incremental` shows it equals a full compile (else None, and
the caller compiles in full).  :mod:`fslang.api` imports this module when
first needed (it imports the api's build pieces)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from compiler.check.frontend import FrontendResult, run
from compiler.flowir import FlowEntry
from compiler.ir import Drop as ir_Drop
from compiler.ir import Policy as ir_Policy
from compiler.ir import Site
from compiler.lowering import tables as T
from compiler.pipeline import Compiled
from compiler.placement.place import Placement
from compiler.steering.steer import DROPPED, TRUE, SteeringPlan
from fslang import ast as A
from fslang import incremental as inc
from fslang.api import Build, _compile
from fslang.source import SourceFile, Span


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
        return inc.PolicyRecord(p.name, -1, -1, -1, -1, 0, inc.cubes_of(p), "", int(p.symmetric))  # see find_edit
    ms, me = (stmt.match.span.start, stmt.match.span.end) if stmt.match is not None else (-1, -1)
    me = inc.statement_end(text, me) if me >= 0 else me  # the tree leaves a value's closing bracket out
    ok = ok and not _names(stmt.match)  # a named set's use decides its W0001 (and another policy may use it)
    end = inc.statement_end(text, stmt.span.end)
    chain = inc.chain_key(text[me:end]) if me >= 0 else ""
    return inc.PolicyRecord(p.name, start, end, ms, me, int(ok and ms >= 0), inc.cubes_of(p), chain, int(p.symmetric))


#: more chains than this and the cache keeps no affinity (a pipeline edit then compiles in full)
MAX_CACHED_CHAINS = 2000


def make_cache(b: Build, front: FrontendResult, previous: Placement | None, generation: int, options: str) -> inc.Cache:
    """The incremental cache of a full compile.  A splice keeps the earlier
    placement, which a full compile with ``--previous`` keeps only if placing
    the site from it gives it back: known when this compile was given its
    own result as ``previous`` (``placement_fixed``); after a plain compile,
    the first ``--previous`` compile places the edited site again to find
    out (from the affinity kept here: 0.2 s at 10,000 policies, instead of
    on every compile)."""
    from compiler.placement.affinity import affinity

    c = b.compiled
    assert c is not None and c.steering is not None and b.site is not None and b.summary
    placed = c.placement
    assert placed is not None
    # no instance: nothing to place, whatever the previous placement
    fixed = (previous is not None and previous.to_json() == placed.to_json()) or not placed.instances
    stmts = _policy_stmts(front.program)
    boxed = inc.boxed(c.steering)
    text = front.source.text
    policies = [_record(text, p, stmts.get(p.name), inc.spliceable(p, boxed)) for p in b.site.policies]
    # plan.json lists every other file's sha256 already (the same texts): hashing 100 MB twice cost 0.25 s
    plan_files = json.loads(b.files["plan.json"]).get("files", {}) if "plan.json" in b.files else {}
    files = {path: plan_files.get(path) or _sha256(body) for path, body in b.files.items()}
    ids: dict[str, list[int]] = {}
    for pol, _, entry in c.steering.ingress:
        ids.setdefault(pol.name, []).append(entry.id)
    reps: dict[str, ir_Policy] = {}
    for p, r in zip(b.site.policies, policies):
        reps.setdefault(r.chain, p)
    keep = len(reps) <= MAX_CACHED_CHAINS
    chains: dict[str, tuple[list[int], list[list[object]] | None]] = {
        key: (ids[p.name], _pairs(affinity(dataclasses.replace(b.site, policies=(p,)))) if keep else None)
        for key, p in reps.items()
        if key
    }
    total = _pairs(affinity(b.site)) if keep else None
    after = next(
        (e.goto_table for t in c.tables.values() for e in t.entries if e.table_id == T.POLICY and e.write_metadata),
        None,
    )
    return inc.Cache(
        text,
        generation,
        False,
        files,
        b.diagnostics,
        b.summary,
        policies,
        fixed,
        chains,
        total,
        after,
        _replies(c),
        {m.name: (m.replicas, m.max_replicas, m.weights) for m in b.site.modules},
        len(c.steering.selectors),
        next((i for i, combos in enumerate(c.steering.selectors) if combos == _DROPPED), None),
        _last_first(b.site, c.steering),
        options,
    )


def _last_first(site: Site, steering: SteeringPlan) -> int:
    """The index of the last policy whose unfolding brought a new decision list."""
    index = {p.name: p.index for p in site.policies}
    seen: set[int] = set()
    last = -1
    for e in steering.entries:
        if e.id not in seen:
            seen.add(e.id)
            last = index[e.policy]
    return last


_DROPPED = [(TRUE, DROPPED)]  # the decision list of `drop`


def _pairs(aff: Mapping[tuple[str, str], int]) -> list[list[object]]:
    return [[a, b_, w] for (a, b_), w in sorted(aff.items()) if w]


def _replies(c: Compiled) -> dict[str, int]:
    """Switch -> how many symmetric policies have reply entries in its POLICY table."""
    assert c.steering is not None
    reverse: set[int] = set()
    for i, (_, direction, _) in enumerate(c.steering.ingress):
        if direction == "reverse":
            reverse.add(T.PRIO_POLICY_TOP - i)
    out = {}
    for sw, t in c.tables.items():
        owners = {e.cookie for e in t.entries if e.table_id == T.POLICY and e.priority in reverse}
        if owners:
            out[sw] = len(owners)
    return out


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
    """The same site compiled again from its own output: the same files
    (once placing it again is known to keep its placement)."""
    if not cache.placement_fixed and (
        cache.affinity is None or not _placement_kept(name, None, cache.affinity, previous, cache)
    ):
        return _fallback("placing the site again from the earlier output's placement may move instances")
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


def incremental(
    name: str,
    data: bytes | str,
    folder: Path,
    previous: Placement | None,
    optimal: bool,
    generation: int,
    options: str = "",
) -> Build | None:
    """The build of a one-policy edit (its statement changed, added or
    removed) spliced into ``folder``'s output (or of the same site again:
    the earlier files), or None (then compile in full)."""
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
    if options and not cache.placement_fixed:  # placing again (below) would not leave those hosts out
        return _fallback("the earlier output was not compiled with --previous, and hosts are left out or scaled")
    if text == cache.text:
        return _unchanged(name, text, folder, cache, previous)
    edit = inc.find_edit(cache, text)
    if edit is None or "\ufeff" in text or "\x00" in text:
        return _fallback("the change is not one policy statement changed, added or removed")
    return _splice(name, text, folder, cache, previous, edit, generation)


def _splice(
    name: str, text: str, folder: Path, cache: inc.Cache, previous: Placement, edit: inc.Edit, generation: int
) -> Build | None:
    """:func:`incremental` once the edit is found: every check that the
    splice equals a full compile (fslang/incremental.py), then the splice."""
    from fslang import incremental_splice as sp

    records = cache.policies
    old = records[edit.index] if edit.kind != "add" else None
    end_old = old.end if old is not None else edit.at  # where the text after the edit starts, in the old text
    if old is not None and not old.spliceable:
        return _fallback("the policy cannot be spliced (exclusions, named sets, a box or non-IP parts)")
    if old is not None and any(d.span.end > old.start and d.span.start < old.end for d in cache.diagnostics):
        return _fallback("the policy had diagnostics")
    others = inc.CubeGroups(cache, edit.index if old is not None else -1)
    if old is not None and others.meet(old.cubes):
        return _fallback("the policy's old match overlaps another policy")
    record = None
    new_pairs: list[list[object]] = []
    mine: dict[str, list[FlowEntry]] = {}
    r_site: Site | None = None
    if edit.kind != "remove":
        reduced = _compile(run(name, edit.reduced), previous, False, generation, False, _PROBE)
        c, r_site = reduced.compiled, reduced.site
        if c is None or r_site is None or c.steering is None or not reduced.ok or len(r_site.policies) != 1:
            return _fallback("the reduced site does not compile")
        p = r_site.policies[0]
        stmt = _policy_stmts(reduced.front.program if reduced.front else None).get(p.name)
        record = _record(text, p, stmt, inc.spliceable(p, inc.boxed(c.steering)))
        start = old.start if old is not None else edit.at
        new_end = (old.end if old is not None else edit.at) + edit.delta
        if edit.kind == "add":
            ins = text[edit.at : edit.at + edit.delta]
            start = edit.at + len(ins) - len(ins.lstrip())
            new_end = edit.at + len(ins.rstrip())
        if (record.start, record.end, record.spliceable) != (start, new_end, 1) or (
            old is not None and record.name != old.name
        ):
            return _fallback("the edited statement is not one policy that can be spliced")
        if edit.kind == "add" and any(r.name == record.name for r in records):
            return _fallback("the added policy's name is taken")
        if any(d.span.end > start and d.span.start < new_end for d in reduced.diagnostics):
            return _fallback("the edited policy has diagnostics")
        if others.meet(record.cubes):
            return _fallback("the policy's new match overlaps another policy")
        if record.chain != (old.chain if old else None):
            from compiler.placement.affinity import affinity

            new_pairs = _pairs(affinity(r_site))
        for sw, tables in c.tables.items():
            for e in tables.entries:
                if (e.cookie >> 16) & 0xFFFF == 1:
                    mine.setdefault(sw, []).append(e)
    # the decision lists: a chain that an earlier policy has keeps every list's number and every tag
    j = edit.index
    old_chain, new_chain = (old.chain if old else None), (record.chain if record else None)
    chains, n_selectors = cache.chains, cache.selectors
    if old_chain != new_chain:
        if old_chain is not None and not any(r.chain == old_chain for r in records[:j]):
            return _fallback("the policy was the first with its pipeline (decision lists would be renumbered)")
        if new_chain is not None and not any(r.chain == new_chain for r in records[:j]):
            # a pipeline no earlier policy has: only `drop` (whose decision list no entry writes), its list
            # the last (after every other pipeline's first policy) or one the site has already
            assert record is not None and r_site is not None
            if (
                not isinstance(r_site.policies[0].pipeline, ir_Drop)
                or new_chain in chains
                or cache.last_first >= j
                or (cache.drop_id is None and n_selectors >= T.MAX_ENTRIES)
            ):
                return _fallback("the policy is the first with its pipeline (decision lists would be renumbered)")
            drop_id = n_selectors if cache.drop_id is None else cache.drop_id
            n_selectors += cache.drop_id is None
            chains = {**chains, new_chain: ([drop_id] * (1 + record.symmetric), [])}
        if cache.affinity is None or cache.chains.get(old_chain or "", ([], []))[1] is None:
            return _fallback("the cache keeps no placement affinity for this site (too many chains)")
    ids = chains.get(new_chain or "", ([], None))[0] if new_chain else []
    old_ids = chains.get(old_chain or "", ([], None))[0] if old_chain else []
    # placement: the same problem (affinity unchanged), or placed again and found the same
    affinity_new = cache.affinity
    if old_chain != new_chain:
        assert cache.affinity is not None
        old_pairs = cache.chains[old_chain][1] if old_chain else []
        affinity_new = _sum_pairs(cache.affinity, old_pairs or [], new_pairs)
    # an output not compiled with --previous does not know that placing its site from it keeps it
    if affinity_new != cache.affinity or not cache.placement_fixed:
        if affinity_new is None or not _placement_kept(name, r_site, affinity_new, previous, cache):
            return _fallback("placing the edited site again may move instances")
    files = inc.read_outputs(Path(folder), cache)
    if files is None or files.get("placement.json") != previous.to_json():
        return _fallback("the earlier output's files differ from what the cache says")
    n_sym_before = sum(r.symmetric for r in records[:j])
    first = T.PRIO_POLICY_TOP - j - n_sym_before
    old_dirs = 1 + old.symmetric if old else 0
    new_dirs = 1 + record.symmetric if record else 0
    shift = {"add": 1, "remove": -1}.get(edit.kind, 0)
    n_dirs = sum(1 + r.symmetric for r in records) - old_dirs + new_dirs
    if n_dirs > T.PRIO_POLICY_TOP - T.PRIO_POLICY_MIN or len(records) + shift >= 0xFFFF:
        return _fallback("too many policies")
    move = sp.Move(first, old_dirs, new_dirs, shift)
    gen_bit = generation << T.GENERATION_COOKIE_BIT
    cookie = T.policy_cookie(j, 0) | gen_bit
    prios = {T.PRIO_POLICY_TOP - d: first - d for d in range(new_dirs)}
    bits = {T.PRIO_POLICY_TOP - d: inc.entry_bits(i, generation) for d, i in enumerate(ids)}
    # only POLICY entries write a decision list's metadata (with this mask)
    watch = sorted({f"write_metadata:{inc.entry_bits(i, generation):#x}/{T.ENTRY_MASK:#x}," for i in {*ids, *old_ids}})
    rules: dict[str, int] = {}
    carry: dict[str, list[str]] = {}
    replies = dict(cache.replies)
    out = dict(files)
    for sw_name, _, tcam in cache.summary.switches:
        ofctl, json_path = f"openflow/{sw_name}.ofctl", f"openflow/{sw_name}.json"
        entries = sp.with_actions(mine.get(sw_name, []), prios, T.policy_cookie(j, 0), cache.after, bits)
        if entries is None:
            return _fallback("the policy has entries outside its POLICY table")
        dpid = _dpid(files[json_path])
        got = (
            None
            if dpid is None
            else sp.splice_switch(files[ofctl], files[json_path], cookie if old else None, entries, dpid, move)
        )
        if got is None:
            return _fallback("a switch's rules cannot be spliced")
        new_ofctl, new_json, had, has = got
        # the switch holds a decision list's SELECT rules if a POLICY entry writes it (lowering's entries_here)
        if any((w in files[ofctl]) != (w in new_ofctl) for w in watch):
            return _fallback("a decision list would appear on or leave a switch")
        # it holds region tables if some symmetric policy's replies are classified there
        before = replies.get(sw_name, 0)
        now = before - int(1 in had) + int(1 in has)
        if (before > 0) != (now > 0):
            return _fallback("a switch would gain or lose its region tables")
        if now:
            replies[sw_name] = now
        else:
            replies.pop(sw_name, None)
        n = new_ofctl.count("\n")
        if tcam is not None and n > tcam:
            return _fallback("a switch would pass its tcam")
        if new_ofctl != files[ofctl]:
            out[ofctl], out[json_path] = new_ofctl, new_json
        if had or has:
            rules[sw_name] = n
            carry[sw_name] = inc.json_cannot_carry(new_ofctl)
    # the cache's records, in the new text
    new_records = [q if i < j else q.shifted(edit.delta) for i, q in enumerate(records)]
    if edit.kind == "add":
        assert record is not None
        new_records.insert(j, record)
    elif edit.kind == "remove":
        del new_records[j]
    else:
        assert record is not None
        new_records[j] = record
    plan_text: str | None = files["plan.json"]
    if shift or old_dirs != new_dirs:
        infos = [(r.name, i, bool(r.symmetric)) for i, r in enumerate(new_records)]
        plan_text = sp.plan_policies(files["plan.json"], infos)
    changed = {path: _sha256(t) for path, t in out.items() if t is not files[path]}
    if plan_text is not None:
        plan_text = inc.plan_json(plan_text, cache.files, changed, rules, carry)
    if plan_text is None:
        return _fallback("plan.json cannot be updated in place")
    out["plan.json"] = plan_text
    source = SourceFile(name, text)
    diags = [
        d
        if d.span.start < end_old
        else dataclasses.replace(d, span=Span(d.span.start + edit.delta, d.span.end + edit.delta))
        for d in cache.diagnostics
    ]
    switches = tuple((n, rules.get(n, r), t) for n, r, t in cache.summary.switches)
    head = cache.summary.head
    if shift:
        head = head.replace(f": {len(records)} policies,", f": {len(new_records)} policies,", 1)
    summary = dataclasses.replace(cache.summary, head=head, switches=switches, moved="")
    hashes = {**cache.files, **changed, "plan.json": _sha256(plan_text)}
    new_cache = inc.Cache(
        text,
        generation,
        False,
        hashes,
        diags,
        summary,
        new_records,
        True,
        chains,
        affinity_new,
        cache.after,
        replies,
        cache.modules,
        n_selectors,
        cache.drop_id if cache.drop_id is not None or n_selectors == cache.selectors else cache.selectors,
        j if n_selectors != cache.selectors else cache.last_first + shift * (cache.last_first >= j),
        cache.options,
    )
    return Build(source, None, None, out, diags, summary, {inc.CACHE: new_cache.to_text()}, incremental=True)


def _dpid(json_text: str) -> int | None:
    head = json_text[: json_text.find(",")]
    try:
        return int(head.removeprefix('{"dpid": '))
    except ValueError:
        return None


def _sum_pairs(total: list[list[object]], minus: list[list[object]], plus: list[list[object]]) -> list[list[object]]:
    """Affinity ``total - minus + plus`` (lists of [a, b, weight], sorted, no zero weights)."""
    acc: dict[tuple[str, str], int] = {(str(a), str(b)): int(w) for a, b, w in total}  # type: ignore[call-overload]
    for sign, pairs in ((-1, minus), (1, plus)):
        for a, b, w in pairs:
            key = (str(a), str(b))
            acc[key] = acc.get(key, 0) + sign * int(w)  # type: ignore[call-overload]
    return [[a, b, w] for (a, b), w in sorted(acc.items()) if w]


def _placement_kept(
    name: str, context: Site | None, affinity_new: list[list[object]], previous: Placement, cache: inc.Cache
) -> bool:
    """Does placing the edited site from ``previous`` keep it?  Placement
    reads the policies only through their affinity (module pairs visited
    back to back, ``compiler.placement.affinity.affinity``): the site's context
    (``context``: the reduced site, or None: parsed here) with stand-in
    policies of the same affinity is placed instead."""
    from compiler.headerspace.matchset import MatchSet
    from compiler.ir import Serial, Use
    from compiler.placement.place import place

    site = context or run(name, inc._blanked(cache.text, [(r.start, r.end) for r in cache.policies])).site
    if site is None or {m.name for m in site.modules} != cache.modules.keys():
        return False
    modules = []
    for m in site.modules:  # the replicas the policies' pipelines give (the context alone has none)
        replicas, most, weights = cache.modules[m.name]
        modules.append(dataclasses.replace(m, replicas=replicas, max_replicas=most, weights=weights))
    site = dataclasses.replace(site, modules=tuple(modules))
    sinks = {m.name for m in site.modules if m.is_sink}
    stand_ins: list[ir_Policy] = []
    for a, b, w in affinity_new:
        first, then = (a, b) if a not in sinks else (b, a)
        if first in sinks:
            return False
        pipe = Serial((Use(str(first)), Use(str(then))))
        count = int(w)  # type: ignore[call-overload]
        for k in range(count // 2 + count % 2):
            symmetric = k < count // 2
            stand_ins.append(ir_Policy(f"\0{len(stand_ins)}", len(stand_ins), (), MatchSet(), pipe, symmetric))
    placed = place(dataclasses.replace(site, policies=tuple(stand_ins)), previous)
    return placed.placement is not None and not placed.diagnostics and placed.placement.to_json() == previous.to_json()
