"""Incremental compile (``fsc compile --previous DIR``): a site whose only
change is one policy's match, spliced into the earlier output instead of
compiled again.

A full compile leaves :data:`CACHE` in its output folder: the site's text,
every file it wrote (as hashes), its diagnostics, the summary, and per
policy its statement and match spans, whether its edit can be spliced
(:func:`spliceable`) and the cubes of its match.  With ``--previous`` the
new text is compared with the cached one; when the change lies inside one
spliceable policy's match, :mod:`fslang.api` compiles a *reduced* site (the
new text with every other policy blanked out, offsets kept) and this module
swaps that policy's POLICY entries in the earlier OpenFlow files for the
reduced site's, with the earlier files' priority, cookie and actions (the
policy's position and its decision list are unchanged).  Anything else,
or any check below that fails, and the caller compiles in full: the result
is always the full compile's, byte for byte (docs/cli.md, "Incremental
compile"; tests/test_incremental.py).

Why a match edit stays local: steering, placement and the host plans read
pipelines, not matches (symmetric policies excepted); a policy without
exclusions, `drop`, boxes or non-IP parts writes only its own POLICY entries;
a policy whose cubes (before and after) meet no other policy's takes part in
no overlap diagnostic and changes no other policy's region.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from backends.emit.documents import CONNTRACK_NOTE, MASKED_PORTS_NOTE
from backends.emit.openflow import UnsupportedError
from backends.emit.openflow.lines import render_lines
from backends.emit.openflow.ofctl import OFCTL
from backends.emit.openflow.ofctl_json import JsonFormat
from compiler import ir
from compiler.flowir import ETH_TYPE_IPV4, ETH_TYPE_IPV6, FlowEntry
from compiler.headerspace.cubes import DEFAULT_LAYOUT
from compiler.pipeline import Compiled
from compiler.steering.steer import SteeringPlan
from fslang.diagnostics import Diagnostic
from fslang.source import Span

CACHE = ".fsc-cache/incremental.json"
FORMAT = 1
_ROOT = Path(__file__).resolve().parents[1]
_CODE = ("fslang", "compiler", "backends/emit", "grammar")


@lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the compiler's own code and the Python version: a cache from
    any other fsc is never used."""
    h = hashlib.sha256(sys.version.encode())
    for top in _CODE:
        for p in sorted((_ROOT / top).rglob("*")):
            if p.suffix in (".py", ".lark") and p.is_file():
                h.update(str(p.relative_to(_ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


class PolicyRecord(NamedTuple):
    """What the cache keeps of one policy: offsets into the site's text (the
    statement from its keyword, its match), whether an edit of its match
    can be spliced, and its match's cubes ("value:mask;..." in hex, read only
    by :func:`overlaps_another`).  A tuple: a cache holds tens of thousands."""

    name: str
    start: int
    end: int
    match_start: int
    match_end: int
    spliceable: int  # 0 or 1
    cubes: str

    def shifted(self, delta: int) -> PolicyRecord:
        return self._replace(
            start=self.start + delta,
            end=self.end + delta,
            match_start=self.match_start + delta,
            match_end=self.match_end + delta,
        )


_ETH_MASK = DEFAULT_LAYOUT.field_mask("eth_type")
_IP_ETH = {ETH_TYPE_IPV4 << DEFAULT_LAYOUT.offset("eth_type"), ETH_TYPE_IPV6 << DEFAULT_LAYOUT.offset("eth_type")}


def boxed(steering: SteeringPlan) -> frozenset[str]:
    """The policies whose packets visit a box."""
    return frozenset(e.policy for e in steering.entries if e.box is not None)


def spliceable(p: ir.Policy, boxed: frozenset[str]) -> bool:
    """Can an edit of ``p``'s match be spliced (see the module docstring)?
    Not symmetric, not `drop`, no exclusions, every term IPv4 or IPv6 (no
    ARP or other part), no box on its way."""
    return (
        not p.symmetric
        and not isinstance(p.pipeline, ir.Drop)
        and bool(p.match.terms)
        and all(
            not t.excluded and t.cube.mask & _ETH_MASK == _ETH_MASK and t.cube.value & _ETH_MASK in _IP_ETH
            for t in p.match.terms
        )
        and p.name not in boxed
    )


#: The header bits the overlap test reads (a projection of each cube: a
#: superset, so cubes whose projections are disjoint are disjoint): the
#: ingress edge, IPv4 destination to ethertype (one run of the layout) and
#: the transport destination port.  IPv6 addresses are left out (its
#: policies are then told apart by the rest, or compiled in full).
_RUNS = (
    (DEFAULT_LAYOUT.offset("in_edge"), 16),
    (DEFAULT_LAYOUT.offset("ipv4_dst"), DEFAULT_LAYOUT.offset("eth_type") + 16 - DEFAULT_LAYOUT.offset("ipv4_dst")),
    (DEFAULT_LAYOUT.offset("tp_dst"), 16),
)


def _project(x: int) -> int:
    out = 0
    for offset, width in _RUNS:
        out = out << width | (x >> offset) & ((1 << width) - 1)
    return out


def cubes_of(p: ir.Policy) -> str:
    """The policy's cubes, projected (:data:`_RUNS`), as "value:mask;..." in hex."""
    return ";".join(f"{_project(t.cube.value):x}:{_project(t.cube.mask):x}" for t in p.match.terms)


@dataclass(frozen=True)
class Summary:
    """What `fsc compile` prints besides the file count: the site line, the
    switches (name, rules, tcam) and the hosts' lines."""

    head: str
    switches: tuple[tuple[str, int, int | None], ...]
    hosts: tuple[str, ...]
    moved: str = ""


def _size(n: int) -> str:
    for unit, f in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= f and n % (f // 4) == 0:
            return f"{n / f:g}{unit}"
    return f"{n}B"


def summary_of(c: Compiled) -> Summary:
    """The summary `fsc compile` prints of ``c`` (rendered by fslang.cli.summary)."""
    assert c.placement is not None
    head = (
        f"compiled site `{c.site.name}`: {len(c.site.policies)} policies, "
        f"{sum(m.replicas for m in c.site.modules)} module instances, "
        f"{len(c.steering.tags) if c.steering else 0} steering tags"
    )
    usage = c.placement.usage()
    hosts = []
    for h in c.site.hosts:
        u = usage[h.name]
        inst = ", ".join(c.placement.instances_on(h.name)) or ("(spare)" if h.spare else "-")
        hosts.append(
            f"{h.name:<12} {u.cores_used:>5}/{h.cores:<5}       {_size(u.memory_used):>7}/{_size(h.memory):<8}   {inst}"
        )
    moved = ", ".join(f"{i} {a} -> {b}" for i, a, b in c.moved)
    switches = tuple((sw.name, len(c.tables[sw.name].entries), sw.tcam) for sw in c.site.switches)
    return Summary(head, switches, tuple(hosts), moved)


@dataclass
class Cache:
    """The cache of one output folder (see the module docstring)."""

    text: str
    generation: int
    optimal: bool
    files: dict[str, str]  # path -> sha256 of the files of the output (the cache aside)
    diagnostics: list[Diagnostic]
    summary: Summary
    policies: list[PolicyRecord]
    #: placing the site again from its own placement keeps it (so `--previous` keeps it too)
    placement_fixed: bool
    #: the platform's build options the output was compiled with (hosts left out, scale; see
    #: fslang.api): "" for none; a compile with other options is a full one
    options: str = ""

    def to_text(self) -> str:
        doc = {
            "format": FORMAT,
            "fsc": code_version(),
            "generation": self.generation,
            "optimal": self.optimal,
            "placement_fixed": self.placement_fixed,
            "files": dict(sorted(self.files.items())),
            "diagnostics": [[d.code, d.message, d.span.start, d.span.end, d.hint, d.label] for d in self.diagnostics],
            "summary": [self.summary.head, [list(s) for s in self.summary.switches], list(self.summary.hosts)],
            "policies": self.policies,
            "text": self.text,
        }
        if self.options:
            doc["options"] = self.options
        body = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        return json.dumps({"sha256": hashlib.sha256(body.encode()).hexdigest()}) + "\n" + body + "\n"


def read_cache(folder: Path) -> Cache | None:
    """The cache of ``folder``, or None if it is missing, damaged or from another fsc."""
    try:
        head, body = (folder / CACHE).read_text(encoding="utf-8").split("\n", 1)
        if json.loads(head)["sha256"] != hashlib.sha256(body.rstrip("\n").encode()).hexdigest():
            return None
        doc = json.loads(body)
        if doc["format"] != FORMAT or doc["fsc"] != code_version():
            return None
        head_line, switches, hosts = doc["summary"]
        return Cache(
            text=doc["text"],
            generation=int(doc["generation"]),
            optimal=bool(doc["optimal"]),
            files={str(k): str(v) for k, v in doc["files"].items()},
            diagnostics=[Diagnostic(c, m, Span(s, e), h, lab) for c, m, s, e, h, lab in doc["diagnostics"]],
            summary=Summary(head_line, tuple((n, r, t) for n, r, t in switches), tuple(hosts)),
            policies=list(map(PolicyRecord._make, doc["policies"])),
            placement_fixed=bool(doc["placement_fixed"]),
            options=str(doc.get("options", "")),
        )
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError):
        return None


def read_outputs(folder: Path, cache: Cache) -> dict[str, str] | None:
    """The earlier output's files, each checked against the cache's hash."""
    out: dict[str, str] = {}
    try:
        for path, digest in cache.files.items():
            data = (folder / path).read_bytes()
            if hashlib.sha256(data).hexdigest() != digest:
                return None
            out[path] = data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return out


# ---------------------------------------------------------------- the edit


@dataclass(frozen=True)
class Edit:
    """One policy's match changed: ``index`` into the cache's policies, the
    length change ``delta``, and the reduced site's text."""

    index: int
    delta: int
    reduced: str


def statement_end(text: str, end: int) -> int:
    """Where a statement whose syntax tree ends at ``end`` really ends: after
    the closing brackets the tree leaves out (blanks and comments between)."""
    i = last = end
    while i < len(text):
        ch = text[i]
        if ch in "})":
            last = i = i + 1
        elif ch in " \t\r\n":
            i += 1
        elif ch == "#":
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl
        else:
            break
    return last


def _common_prefix(a: str, b: str) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # slices compare in C: log n of them
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def find_edit(cache: Cache, text: str) -> Edit | None:
    """The edit of ``text`` against the cached text, if it lies inside one
    spliceable policy's match."""
    old = cache.text
    if old == text:
        return None
    k, n = None, min(len(old), len(text))
    for prefix_first in (True, False):  # an insertion may align either way (its ends may agree with the text)
        if prefix_first:
            a = _common_prefix(old, text)
            s = _common_prefix(old[::-1][: n - a], text[::-1][: n - a])
        else:
            s = _common_prefix(old[::-1], text[::-1])
            a = _common_prefix(old[: n - s], text[: n - s])
        old_end = len(old) - s
        k = next((i for i, p in enumerate(cache.policies) if p.match_start <= a and old_end <= p.match_end), None)
        if k is not None:
            break
    if k is None or not cache.policies[k].spliceable or any(p.start < 0 for p in cache.policies):
        return None
    delta = len(text) - len(old)
    pieces: list[str] = []
    at = 0
    for i, p in enumerate(cache.policies):
        if i == k:
            continue
        start, end = (p.start, p.end) if i < k else (p.start + delta, p.end + delta)
        seg = text[start:end]
        pieces += [text[at:start], re.sub(r"[^\n]", " ", seg) if "\n" in seg else " " * len(seg)]
        at = end
    pieces.append(text[at:])
    return Edit(k, delta, "".join(pieces))


class CubeGroups:
    """The (projected) cubes of every policy but one: values by mask, in hex
    (a site's matches come in a few dozen shapes), parsed only where needed."""

    def __init__(self, cache: Cache, k: int) -> None:
        self.hex: dict[str, list[str]] = {}
        self._ints: dict[str, list[int]] = {}
        for i, p in enumerate(cache.policies):
            if i != k and p.cubes:
                for c in p.cubes.split(";"):
                    v, _, m = c.partition(":")
                    self.hex.setdefault(m, []).append(v)

    def ints(self, mask: str) -> list[int]:
        got = self._ints.get(mask)
        if got is None:
            got = self._ints[mask] = [int(v, 16) for v in self.hex[mask]]
        return got

    def meet(self, cubes: str) -> bool:
        """Does a cube of ``cubes`` meet one of the groups?  Where a group's
        mask lies inside the cube's, that is one lookup of a hex string
        (values have no bits outside their mask)."""
        for c in cubes.split(";") if cubes else ():
            v2, m2 = (int(x, 16) for x in c.split(":"))
            for mask, values in self.hex.items():
                m1 = int(mask, 16)
                both = m1 & m2
                if both == m1:
                    if f"{v2 & m1:x}" in values:
                        return True
                else:
                    want = v2 & both
                    if any(v & both == want for v in self.ints(mask)):
                        return True
        return False


# ---------------------------------------------------------------- splicing


def _block(text: str, needle: str) -> tuple[int, int] | None:
    """The lines of ``text`` holding ``needle``, as the offsets of a
    contiguous run of whole lines ((0, 0): none; None: not contiguous)."""
    pos = text.find(needle)
    if pos < 0:
        return 0, 0
    start = end = text.rfind("\n", 0, pos) + 1
    while True:
        nl = text.find("\n", end)
        if nl < 0 or text.find(needle, end, nl) < 0:
            break
        end = nl + 1
    return (start, end) if text.find(needle, end) < 0 else None


def _line_before(text: str, at: int) -> str:
    return text[text.rfind("\n", 0, at - 1) + 1 : at - 1] if at > 0 else ""


def _line_at(text: str, at: int) -> str:
    nl = text.find("\n", at)
    return text[at : nl if nl >= 0 else len(text)]


def _tail(line: str) -> str:
    return line[line.index(",actions=") :]


def _metadata(line: str) -> frozenset[str]:
    match = line[: line.index(",actions=")].split(",")[3:]
    return frozenset(item for item in match if item.startswith("metadata="))


def _json_actions(line: str) -> str:
    return line[: line.index(', "cookie": ')]


def splice_switch(
    ofctl: str, json_text: str, cookie: int, entries: list[FlowEntry], dpid: int
) -> tuple[str, str, int, int] | None:
    """The switch's files with the policy's entries (``cookie``) replaced by
    ``entries`` (the reduced site's: given the earlier entries' priority,
    cookie and actions), and the (old, new) entry counts; None when the
    splice cannot be shown to equal a full compile."""
    span = _block(ofctl, f",cookie={cookie:#x},")
    jspan = _block(json_text, f'"cookie": {cookie}, ')
    if span is None or jspan is None:
        return None
    (i, j), (ji, jj) = span, jspan
    old, jold = ofctl[i:j].split("\n")[:-1], json_text[ji:jj].split("\n")[:-1]
    if len(old) != len(jold) or not old or not entries:
        return None if old or jold or entries else (ofctl, json_text, 0, 0)
    prefix = old[0][: old[0].index(",cookie=")] + ","
    if not prefix.startswith("table=") or any(not x.startswith(prefix) for x in old):
        return None
    # the neighbours must not share the priority (another policy's entries would interleave)
    if _line_before(ofctl, i).startswith(prefix) or _line_at(ofctl, j).startswith(prefix):
        return None
    # every flow of the block is followed by another (its line ends with a comma)
    if any(not (x.startswith("  {") and x.endswith(",")) for x in jold):
        return None
    tails = {_tail(x) for x in old}
    jacts = {_json_actions(x) for x in jold}
    if len(tails) != 1 or len(jacts) != 1:
        return None
    priority = int(prefix.split(",")[1].removeprefix("priority="))
    try:
        new, jnew = render_lines(
            [replace(e, priority=priority, cookie=cookie) for e in entries], OFCTL, JsonFormat(dpid)
        )
    except UnsupportedError:
        return None  # the full compile says what (it meets the same entry)
    if any(not x.startswith(prefix) for x in new):
        return None
    # the metadata the policy matches on (its ingress edges) spelt the same in both layouts
    if set().union(*map(_metadata, old)) != set().union(*map(_metadata, new)):
        return None
    tail, jact = tails.pop(), jacts.pop()
    block = "".join(x[: x.index(",actions=")] + tail + "\n" for x in new)
    jblock = "".join(jact + x[len(_json_actions(x)) :] + ",\n" for x in jnew)
    return ofctl[:i] + block + ofctl[j:], json_text[:ji] + jblock + json_text[jj:], len(old), len(new)


_MASKED_L4 = re.compile(r",(?:tcp|udp|sctp)_(?:src|dst)=[^,\n]*/")
_CT = re.compile(r",actions=[^\n]*ct\(")


def json_cannot_carry(ofctl: str, masked: str = MASKED_PORTS_NOTE, conntrack: str = CONNTRACK_NOTE) -> list[str]:
    """plan.json's ``json_cannot_carry`` of a switch, read off its ``.ofctl``
    in entry order (as ``backends.emit.output.json_cannot_carry`` finds
    them: within one entry the masked port first)."""
    found = []
    for pattern, note in ((_MASKED_L4, masked), (_CT, conntrack)):
        m = pattern.search(ofctl)
        if m:
            found.append((ofctl.rfind("\n", 0, m.start()), note))
    return [note for _, note in sorted(found, key=lambda f: f[0])]


def _indented(value: object, depth: int) -> str:
    """``value`` as ``json.dumps(..., indent=2, sort_keys=True)`` writes it ``depth`` levels in."""
    return json.dumps(value, indent=2, sort_keys=True).replace("\n", "\n" + "  " * depth)


def _swap(text: str, old: str, new: str) -> str | None:
    """``text`` with its one ``old`` replaced, or None if ``old`` is not there exactly once."""
    at = text.find(old)
    if at < 0 or text.find(old, at + 1) >= 0:
        return None
    return text[:at] + new + text[at + len(old) :]


def plan_json(
    old: str, hashes: dict[str, str], changed: dict[str, str], rules: dict[str, int], carry: dict[str, list[str]]
) -> str | None:
    """plan.json with the ``changed`` files' hashes (path -> new sha256;
    ``hashes``: every file's, as the earlier plan has them), the rule counts
    and JSON notes: the changed values replaced in place (the file is written
    with sorted keys and indent 2; each value replaced must be found exactly
    once as it would be written, else None)."""
    text: str | None = old
    for path, new in changed.items():
        if new != hashes[path] and text is not None:
            text = _swap(text, f'"{path}": "{hashes[path]}"', f'"{path}": "{new}"')
    head = '\n  "switches": '
    start = old.find(head)
    end = old.find("\n  }", start)
    if text is None or start < 0 or end < 0:
        return None
    switches = json.loads(old[start + len(head) : end + 4])
    for sw, n in rules.items():
        was = switches[sw]
        now = {**was, "rules": n, "json_cannot_carry": carry[sw]}
        if now != was and text is not None:
            text = _swap(text, f'"{sw}": {_indented(was, 2)}', f'"{sw}": {_indented(now, 2)}')
    return text
