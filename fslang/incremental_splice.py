"""The text surgery of an incremental compile (:mod:`fslang.incremental`):
one policy's POLICY entries swapped in a switch's `.ofctl` and `.json`, the
policies after it moved (a policy added or removed before them shifts their
priorities and cookies), and `plan.json`'s policy list rewritten.

Why text is enough: lowering gives the policy at ingress position ``i`` (a
symmetric policy's reply counts as one more) the priority
``PRIO_POLICY_TOP - i`` and the cookie of its index, and nothing else of any
other policy's entries depends on that position (their matches, metadata and
actions come from their own terms and decision lists).  The files are in
(table, -priority, match) order, so the policy's entries form one run of
lines of their own priorities, the later policies' runs follow it in the
same order after a uniform shift, and the POLICY (40) and NONIP (41) tables
are the only ones whose lines carry a policy's priority or cookie.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from backends.emit.openflow import UnsupportedError
from backends.emit.openflow.lines import render_lines
from backends.emit.openflow.ofctl import OFCTL
from backends.emit.openflow.ofctl_json import JsonFormat
from compiler.flowir import FlowEntry
from compiler.lowering import tables as T

_TABLES = (T.POLICY, T.NONIP)


@dataclass(frozen=True)
class Move:
    """How the policies after the edited one move: ``first`` is the first
    priority of the edited policy (the same before and after: the policies
    before it are unchanged); it held ``old_dirs`` priorities (0: it was not
    there) and holds ``new_dirs``; ``index_shift`` is added to the index of
    every later policy (its cookie)."""

    first: int
    old_dirs: int
    new_dirs: int
    index_shift: int

    @property
    def prio_shift(self) -> int:
        return self.new_dirs - self.old_dirs


def _prio(line: str) -> int:
    """The priority of an ``.ofctl`` line ``table=N,priority=P,...``."""
    at = line.index(",priority=") + 10
    return int(line[at : line.index(",", at)])


def _jkey(line: str) -> tuple[int, int]:
    """(table, priority) of a ``.json`` flow line (``..., "priority": P, "table_id": N},``)."""
    p = line.rindex(', "priority": ')
    t = line.index(', "table_id": ', p)
    return int(line[t + 14 : line.index("}", t)]), int(line[p + 14 : t])


def _okey(line: str) -> tuple[int, int]:
    """(table, priority) of an ``.ofctl`` line."""
    return int(line[6 : line.index(",")]), _prio(line)


def _first(text: str, lo: int, hi: int, pred: Callable[[str], bool]) -> int:
    """The offset of the first line in ``text[lo:hi]`` (``lo`` and ``hi`` at
    line starts, every line ended by a newline) for which ``pred`` holds
    (false then true: a bisection over offsets, no split)."""
    while lo < hi:
        mid = (lo + hi) // 2
        start = text.rfind("\n", lo, mid) + 1 or lo
        end = text.index("\n", start)
        if pred(text[start:end]):
            hi = start
        else:
            lo = end + 1
    return lo


def _bounds(
    text: str, lo: int, hi: int, key: Callable[[str], tuple[int, int]], table: int, move: Move
) -> tuple[int, int, int, int]:
    """Offsets in ``text[lo:hi]`` (lines by (table, -priority)) of ``table``'s
    lines at policy priorities [s, e) and of the edited policy's run [a, b)."""

    def in_table(x: str) -> bool:
        return key(x)[0] >= table

    def past(x: str) -> bool:
        t, p = key(x)
        return t != table or p < T.PRIO_POLICY_MIN

    def from_first(x: str) -> bool:
        return key(x)[1] <= move.first

    def after_run(x: str) -> bool:
        return key(x)[1] <= move.first - move.old_dirs

    s = _first(text, lo, hi, in_table)
    e = _first(text, s, hi, past)
    a = _first(text, s, e, from_first)
    return s, a, _first(text, a, e, after_run), e


def _moved(lines: list[str], jlines: list[str], move: Move) -> tuple[list[str], list[str]] | None:
    """The lines of later policies (``.ofctl`` and ``.json``, aligned), moved:
    ``table=N,priority=P,cookie=C,...`` and ``..., "cookie": C, ...,
    "priority": P, "table_id": N},``.  A policy's lines come in one run that
    shares (P, C): the ``.json`` lines are rewritten by runs, in C."""
    out: list[str] = []
    jout: list[str] = []
    run_head, run_start, new_head, c_prev = "", 0, "", 0
    for i, line in enumerate(lines + ["\0,cookie=0,"]):
        c = line.index(",cookie=")
        end = line.index(",", c + 8)
        head = line[:end]
        if head != run_head:
            if i > run_start:
                chunk = "\n".join(jlines[run_start:i])
                p_at = run_head.index(",priority=")
                table, prio = run_head[6:p_at], int(run_head[p_at + 10 : c_prev])
                cookie = int(run_head[c_prev + 8 :], 16)
                new_prio, new_cookie = prio - move.prio_shift, cookie + (move.index_shift << 16)
                old_c, old_p = f', "cookie": {cookie}, ', f', "priority": {prio}, "table_id": {table}}},'
                if chunk.count(old_c) != i - run_start or chunk.count(old_p) != i - run_start:
                    return None
                jout.append(
                    chunk.replace(old_c, f', "cookie": {new_cookie}, ').replace(
                        old_p, f', "priority": {new_prio}, "table_id": {table}}},'
                    )
                )
            if i == len(lines):
                break
            run_head, run_start, c_prev = head, i, c
            new_head = f"{line[: line.index(',priority=')]},priority={_prio(line) - move.prio_shift}"
            new_head += f",cookie={int(line[c + 8 : end], 16) + (move.index_shift << 16):#x}"
        out.append(new_head + line[end:])
    return out, jout


def splice_switch(
    ofctl: str, json_text: str, cookie: int | None, entries: list[FlowEntry], dpid: int, move: Move
) -> tuple[str, str, set[int], set[int]] | None:
    """The switch's files with the edited policy's lines (``cookie``; None:
    it is added) replaced by ``entries`` (final: priority, cookie and
    actions as the full compile gives them) and the later policies moved;
    and the policy's directions (0 forward, 1 reverse) with lines here
    before and after.  None when the files are not laid out as this needs
    (then the caller compiles in full).  The files are cut by offsets
    found by bisection: only the lines that change are split."""
    head = '\n "flows": [\n'
    j0 = json_text.find(head) + len(head)
    j_end = json_text.find("\n ]", j0) + 1  # the last flow ends with a newline, not a comma
    if j0 < len(head) or j_end <= 0 or not ofctl.endswith("\n"):
        return None
    try:
        new, jnew = render_lines(entries, OFCTL, JsonFormat(dpid)) if entries else ([], [])
    except UnsupportedError:
        return None  # the full compile says what (it meets the same entry)
    if len(new) != sum(x.startswith(tuple(f"table={t}," for t in _TABLES)) for x in new):
        return None  # the policy's entries are all in POLICY and NONIP
    had: set[int] = set()
    has: set[int] = set()
    o_parts: list[str] = []
    j_parts: list[str] = []
    o_at = j_at = 0
    for table in _TABLES:
        # the table's lines at policy priorities, then the edited policy's run [a, b): by (table, -priority)
        bounds = [_bounds(ofctl, 0, len(ofctl), _okey, table, move), _bounds(json_text, j0, j_end, _jkey, table, move)]
        (s, a, b, e), (js, ja, jb, je) = bounds
        if (ofctl.count("\n", s, a), ofctl.count("\n", a, b), ofctl.count("\n", b, e)) != (
            json_text.count("\n", js, ja),
            json_text.count("\n", ja, jb),
            json_text.count("\n", jb, je),
        ):
            return None  # the .json's flows are the .ofctl's lines, in the same order (one walk renders both)
        mine = ofctl[a:b].split("\n")[:-1]
        want = f",cookie={cookie:#x}," if cookie is not None else "\0"
        if mine and (ofctl.count(want) != len(mine) or any(want not in x for x in mine)):
            return None
        ins = [x for x in new if x.startswith(f"table={table},")]
        jins = [x for x in jnew if x.endswith(f'"table_id": {table}}}')]
        if len(ins) != len(jins) or any(not move.first - move.new_dirs < _prio(x) <= move.first for x in ins):
            return None
        had.update(move.first - _prio(x) for x in mine)
        has.update(move.first - _prio(x) for x in ins)
        later, jlater = ofctl[b:e], json_text[jb:je]
        if (move.prio_shift or move.index_shift) and later:
            moved = _moved(later.split("\n")[:-1], jlater.split("\n")[:-1], move)
            if moved is None:
                return None
            later, jlater = "\n".join(moved[0]) + "\n", "\n".join(moved[1]) + "\n"
        o_parts += [ofctl[o_at:a], "".join(x + "\n" for x in ins), later]
        j_parts += [json_text[j_at:ja], "".join(f"  {x},\n" for x in jins), jlater]
        o_at, j_at = e, je
    o_parts.append(ofctl[o_at:])
    j_parts.append(json_text[j_at:])
    return "".join(o_parts), "".join(j_parts), had, has


def with_actions(
    entries: list[FlowEntry], priorities: dict[int, int], cookie: int, after: int | None, entry_bits: dict[int, int]
) -> list[FlowEntry] | None:
    """The reduced site's entries of the policy with the full site's
    priorities (by the reduced one), cookie and, for an entry that hands the
    packet on, its decision list's metadata (``entry_bits``: by reduced
    priority) and the table after POLICY (``after``)."""
    out: dict[FlowEntry, None] = {}
    for e in entries:
        prio = priorities.get(e.priority)
        if prio is None or e.table_id != T.POLICY or e.actions:
            return None
        gen = e.cookie & (1 << T.GENERATION_COOKIE_BIT)
        if e.write_metadata is None and e.goto_table is None:
            out[replace(e, priority=prio, cookie=cookie | gen)] = None  # `drop`
            continue
        bits = entry_bits.get(e.priority)
        if e.write_metadata is None or e.write_metadata[1] != T.ENTRY_MASK or bits is None or after is None:
            return None
        wm = (bits, T.ENTRY_MASK)
        out[replace(e, priority=prio, cookie=cookie | gen, goto_table=after, write_metadata=wm)] = None
    return list(out)


def plan_policies(plan: str, policies: list[tuple[str, int, bool]]) -> str | None:
    """plan.json with its list of policies (name, index, symmetric) replaced,
    written as ``json.dumps(..., indent=2, sort_keys=True)`` writes the
    whole file (``backends.emit.documents.PolicyInfo``; a test compares)."""
    head = '\n  "policies": '
    start = plan.find(head)
    end = plan.find("\n  ],\n", start)
    if start < 0 or end < 0 or not policies:
        return None
    mask = f"{T.POLICY_COOKIE_MASK:#x}"
    items = ",\n".join(
        f'    {{\n      "cookie": "{T.policy_cookie(i, 0):#x}/{mask}",\n      "name": {json.dumps(name)},\n'
        f'      "symmetric": {"true" if sym else "false"}\n    }}'
        for name, i, sym in policies
    )
    return plan[: start + len(head)] + "[\n" + items + plan[end:]
