"""Incremental compile (``fsc compile --previous DIR``): a site whose only
change is one policy statement (its match, its pipeline, `symmetric`) or a
policy added or removed, spliced into the earlier output instead of
compiled again.

A full compile leaves :data:`CACHE` in its output folder: the site's text,
every file it wrote (as hashes), its diagnostics, the summary, per policy
its statement and match spans, whether it can be spliced
(:func:`spliceable`), the cubes of its match and the digest of its
pipeline (:func:`chain_key`); per pipeline its decision lists and the
module pairs it adds to placement's affinity; and what the switches hold
that depends on all policies together (which decision lists, which reply
tables).  With ``--previous`` the new text is compared with the cached one
(:func:`find_edit`); :mod:`fslang.incremental_build` compiles a *reduced* site (the new
text with every other policy blanked out, offsets kept) for the edited
policy's POLICY entries, and :mod:`fslang.incremental_splice` puts them in
the earlier OpenFlow files with the full site's priority, cookie and
decision list, moving the later policies' priorities and cookies when one
was added or removed.  Anything else, or any check that fails, and the
caller compiles in full: the result is always the full compile's, byte for
byte (docs/tutorial.md; tests/test_incremental.py).

Why the edit stays local:

* a policy without exclusions, boxes, named sets or non-IP parts writes
  only its own POLICY entries (its match spelt alone, its position as
  priority and cookie, its decision list as metadata);
* a pipeline an earlier policy already has keeps every decision list's
  number and every steering tag (they are numbered in first-use order), so
  SELECT, STEER, the host plans and Click configurations are unchanged;
  `drop` adds a list no entry writes (it is spliced when that list comes
  last);
* placement reads policies only through the affinity of module pairs: the
  same affinity, the same placement; another one is placed again
  (stand-in policies of that affinity) and must give the same placement;
* a switch holds a decision list's SELECT entries if some POLICY entry
  writes it, and region tables if it classifies some reply: both checked
  before and after;
* a policy whose cubes (before and after) meet no other policy's takes part
  in no overlap diagnostic.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from backends.emit.documents import CONNTRACK_NOTE, MASKED_PORTS_NOTE
from compiler import ir
from compiler.flowir import ETH_TYPE_IPV4, ETH_TYPE_IPV6
from compiler.headerspace.cubes import DEFAULT_LAYOUT
from compiler.lowering import tables as T
from compiler.pipeline import Compiled
from compiler.steering.steer import SteeringPlan
from fslang.diagnostics import Diagnostic
from fslang.source import Span

CACHE = ".fsc-cache/incremental.json"
FORMAT = 2
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
    chain: str  # what the statement says after its match (pipeline, `symmetric`), as a digest
    symmetric: int  # 0 or 1

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
    """Can ``p`` be edited, added or removed by a splice (see the module
    docstring)?  No exclusions, every term IPv4 or IPv6 (no ARP or other
    part: POLICY entries only, and no other policy's ARP entries depend on
    it), no box on its way."""
    return (
        bool(p.match.terms)
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
    """The policy's cubes, projected (:data:`_RUNS`), as "value:mask;..." in
    hex (forward only: first-match diagnostics read no reply direction)."""
    return ";".join(f"{_project(t.cube.value):x}:{_project(t.cube.mask):x}" for t in p.match.terms)


def chain_key(text: str) -> str:
    """The digest of what a statement says after its match (blanks aside):
    two policies of one site with the same one unfold alike (one decision
    list per direction)."""
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()[:16]


def entry_bits(entry_id: int, generation: int) -> int:
    """The metadata a POLICY entry writes for decision list ``entry_id``
    (as ``compiler.lowering.lower.Lowering.entry_bits``)."""
    return ((entry_id + 1) | generation << T.GENERATION_ENTRY_BIT) << T.ENTRY_SHIFT


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
    #: chain digest -> its decision lists (forward, reverse), and the module pairs its policies add
    #: to placement's affinity (None: too many chains to keep them)
    chains: dict[str, tuple[list[int], list[list[object]] | None]]
    #: placement's affinity of the whole site ([a, b, weight], sorted), None with the pairs
    affinity: list[list[object]] | None
    #: the table POLICY hands packets on to (None: no policy does)
    after: int | None
    #: switch -> the symmetric policies whose replies it classifies (it has region tables)
    replies: dict[str, int]
    #: module -> [replicas, max_replicas, weights]: what the pipelines' `* N` made of each module
    modules: dict[str, tuple[int, int, tuple[int, ...]]]
    #: how many decision lists the site has, and which one is `drop`'s (None: none)
    selectors: int
    drop_id: int | None
    #: the last policy (index) whose pipeline brought a new decision list (-1: none)
    last_first: int
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
            "chains": dict(sorted(self.chains.items())),
            "affinity": self.affinity,
            "after": self.after,
            "replies": dict(sorted(self.replies.items())),
            "modules": dict(sorted(self.modules.items())),
            "selectors": self.selectors,
            "drop_id": self.drop_id,
            "last_first": self.last_first,
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
            chains={str(k): (list(v[0]), v[1]) for k, v in doc["chains"].items()},
            affinity=doc["affinity"],
            after=doc["after"],
            replies={str(k): int(v) for k, v in doc["replies"].items()},
            modules={str(k): (int(v[0]), int(v[1]), tuple(map(int, v[2]))) for k, v in doc["modules"].items()},
            selectors=int(doc["selectors"]),
            drop_id=doc["drop_id"],
            last_first=int(doc["last_first"]),
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
    """One policy statement changed, added or removed (``kind``): its
    position ``index`` (in the earlier site; for "add", in the new one),
    where the change starts in both texts (``at``: the statement's start, or
    where the new one goes), the length change ``delta``, and the reduced
    site's text (the new text with every other policy blanked; "" for
    "remove")."""

    kind: str  # "modify", "add" or "remove"
    index: int
    at: int
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


def _blanked(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span's characters but newlines made blanks (offsets and lines kept)."""
    pieces: list[str] = []
    at = 0
    for start, end in spans:
        seg = text[start:end]
        pieces += [text[at:start], re.sub(r"[^\n]", " ", seg) if "\n" in seg else " " * len(seg)]
        at = end
    pieces.append(text[at:])
    return "".join(pieces)


def _spans_but(cache: Cache, skip: int, after: int, delta: int) -> list[tuple[int, int]]:
    """The policies' spans in the new text: all but ``skip``, those from ``after`` on moved by ``delta``."""
    return [
        (p.start, p.end) if i < after else (p.start + delta, p.end + delta)
        for i, p in enumerate(cache.policies)
        if i != skip
    ]


def find_edit(cache: Cache, text: str) -> Edit | None:
    """The edit of ``text`` against the cached text, if it changes one
    policy statement, or adds or removes one (with only blanks around it)."""
    old = cache.text
    if old == text or any(p.start < 0 for p in cache.policies):
        return None
    n = min(len(old), len(text))
    delta = len(text) - len(old)
    pre, suf = _common_prefix(old, text), _common_prefix(old[::-1], text[::-1])
    starts = [p.start for p in cache.policies]
    near = bisect.bisect_left(starts, pre)
    for i in range(max(0, near - 2), min(len(starts), near + 2)):
        p = cache.policies[i]
        if delta > 0:  # added before policy i (blanks after it), or after it (blanks before)
            for x, j, before in ((p.start, i, False), (p.end, i + 1, True)):
                ins = text[x : x + delta]
                lead, trail = ins[: len(ins) - len(ins.lstrip())], ins[len(ins.rstrip()) :]
                if (
                    (bool(lead), bool(trail)) == (before, not before)
                    and ins.strip().startswith("policy")
                    and text[:x] == old[:x]
                    and text[x + delta :] == old[x:]
                ):
                    spans = _spans_but(cache, -1, j, delta)
                    return Edit("add", j, x, delta, _blanked(text, spans))
        elif delta < 0:  # policy i removed with the blanks after it, or before it
            for x in (p.start, p.end + delta):
                gone = old[x : x - delta]
                if text[:x] == old[:x] and text[x:] == old[x - delta :] and gone.strip() == old[p.start : p.end]:
                    return Edit("remove", i, x, delta, "")
    for prefix_first in (True, False):  # an insertion may align either way (its ends may agree with the text)
        a = pre if prefix_first else min(pre, n - suf)
        s = min(suf, n - a) if prefix_first else suf
        k = next((i for i, p in enumerate(cache.policies) if p.start <= a and len(old) - s <= p.end), None)
        if k is not None:
            spans = _spans_but(cache, k, k + 1, delta)
            return Edit("modify", k, cache.policies[k].start, delta, _blanked(text, spans))
    return None


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


# ---------------------------------------------------------------- plan.json


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
