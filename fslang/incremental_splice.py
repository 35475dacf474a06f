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
from bisect import bisect_left
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


def _section(text: str, lines: list[str], table: int) -> tuple[int, int]:
    """The run of ``lines`` (``text`` split) of ``table`` at policy priorities (>= PRIO_POLICY_MIN)."""
    head = f"table={table},"
    at = 0 if text.startswith(head) else text.find("\n" + head) + 1
    if at == 0 and not text.startswith(head):
        return 0, 0
    start = text.count("\n", 0, at)

    def key(x: str) -> tuple[int, int]:
        return (0, -_prio(x)) if x.startswith(head) else (1, 0)

    return start, bisect_left(lines, (0, 1 - T.PRIO_POLICY_MIN), start, len(lines) - 1, key=key)


def _moved_ofctl(line: str, move: Move, memo: dict[str, str]) -> str:
    """``line`` (``table=N,priority=P,cookie=C,...``) of a later policy, moved."""
    c = line.index(",cookie=")
    end = line.index(",", c + 8)
    head = line[:end]
    new = memo.get(head)
    if new is None:
        prio = _prio(line) - move.prio_shift
        cookie = int(line[c + 8 : end], 16) + (move.index_shift << 16)
        new = memo[head] = f"{line[: line.index(',priority=')]},priority={prio},cookie={cookie:#x}"
    return new + line[end:]


def _moved_json(line: str, move: Move, memo: dict[str, str]) -> str | None:
    """The same for a ``.json`` flow line (``..., "cookie": C, ..., "priority": P, "table_id": N},``)."""
    c = line.find(', "cookie": ')
    p = line.rfind(', "priority": ')
    if c < 0 or p < 0:
        return None
    c_end = line.index(",", c + 12)
    p_end = line.index(",", p + 14)
    key = line[c + 12 : c_end] + " " + line[p + 14 : p_end]
    new = memo.get(key)
    if new is None:
        cookie = int(line[c + 12 : c_end]) + (move.index_shift << 16)
        prio = int(line[p + 14 : p_end]) - move.prio_shift
        new = memo[key] = f"{cookie}\0{prio}"
    cookie_s, prio_s = new.split("\0")
    return line[: c + 12] + cookie_s + line[c_end : p + 14] + prio_s + line[p_end:]


def splice_switch(
    ofctl: str, json_text: str, cookie: int | None, entries: list[FlowEntry], dpid: int, move: Move
) -> tuple[str, str, set[int], set[int]] | None:
    """The switch's files with the edited policy's lines (``cookie``; None:
    it is added) replaced by ``entries`` (final: priority, cookie and
    actions as the full compile gives them) and the later policies moved;
    and the policy's directions (0 forward, 1 reverse) with lines here
    before and after.  None when the
    files are not laid out as this needs (then the caller compiles in full)."""
    lines = ofctl.split("\n")
    if lines[-1] != "":
        return None
    jhead, sep, jrest = json_text.partition('\n "flows": [\n')
    jflows, sep2, jtail = jrest.partition("\n ]")
    if not sep or not sep2:
        return None
    jlines = jflows.split("\n")
    try:
        new, jnew = render_lines(entries, OFCTL, JsonFormat(dpid)) if entries else ([], [])
    except UnsupportedError:
        return None  # the full compile says what (it meets the same entry)
    had: set[int] = set()
    has: set[int] = set()
    for table in _TABLES:
        start, end = _section(ofctl, lines, table)
        # the .json's flows are the .ofctl's lines, in the same order (one walk renders both)
        if end > start and not all(
            jlines[i].startswith('  {"actions": ') and jlines[i].endswith(f'"table_id": {table}}},')
            for i in (start, end - 1)
        ):
            return None
        # lines of descending priority: the edited policy's run is [a, b)
        a = bisect_left(lines, -move.first, start, end, key=lambda x: -_prio(x))
        b = bisect_left(lines, move.old_dirs - move.first, start, end, key=lambda x: -_prio(x))
        mine = lines[a:b]
        if mine and (cookie is None or ofctl.count(f",cookie={cookie:#x},") != len(mine)):
            return None
        if any(f",cookie={cookie:#x}," not in x for x in mine):
            return None
        ins = [x for x in new if x.startswith(f"table={table},")]
        jins = [x for x in jnew if x.endswith(f'"table_id": {table}}}')]
        if len(ins) != len(jins) or any(not move.first - move.new_dirs < _prio(x) <= move.first for x in ins):
            return None
        had.update(move.first - _prio(x) for x in mine)
        has.update(move.first - _prio(x) for x in ins)
        later, jlater = lines[b:end], jlines[b:end]
        if move.prio_shift or move.index_shift:
            memo: dict[str, str] = {}
            jmemo: dict[str, str] = {}
            later = [_moved_ofctl(x, move, memo) for x in later]
            moved = [_moved_json(x, move, jmemo) for x in jlater]
            if any(x is None for x in moved):
                return None
            jlater = moved  # type: ignore[assignment]
        lines[a:end] = ins + later
        jlines[a:end] = [f"  {x}," for x in jins] + jlater
    if len(new) != sum(x.startswith(tuple(f"table={t}," for t in _TABLES)) for x in new):
        return None  # the policy's entries are all in POLICY and NONIP
    return "\n".join(lines), jhead + sep + "\n".join(jlines) + sep2 + jtail, had, has


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
