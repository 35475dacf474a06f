"""The placement problem and its result, shared by the heuristic and the exact solver.

A site is flattened once into a ``Problem`` (instances, the hosts each may use,
module affinities), so both solvers optimise the very same objective and the
tests can score any placement with ``Problem.score``.

Objective (lexicographic, smaller is better):
  1. cores used on ``spare`` hosts (a spare is for fail-over: use it last, and
     leave as much of it free as possible);
  2. co-located replica pairs (pairs of instances of one module on one host:
     a host failure should not take out every replica);
  3. ``spread``: switch crossings, then the busiest host's core-use fraction;
     ``pack``: hosts in use, then switch crossings.
Consecutive stages share a host wherever capacity allows (cores are reserved
per instance, so a full host is not a slow one); ``spread`` then balances
what is left, ``pack`` frees whole hosts (power saving) even at the price of
crossings.
Switch crossings = sum over affine module pairs (A, B) of weight(A, B) times the
number of instance pairs (a, b) on different hosts; a pair is affine when B
directly follows A in a pipeline with no box between (see ``affinity``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from math import gcd
from operator import truediv
from typing import NamedTuple

from pydantic import ValidationError

from compiler import ir
from compiler.placement.document import Amount, PlacedInstance, PlacementDocument, PlacementHost
from fslang.diagnostics import Diagnostic

GiB = 1 << 30
MiB = 1 << 20
KiB = 1 << 10


class Usage(NamedTuple):
    cores_used: int
    cores_free: int
    memory_used: int
    memory_free: int


@dataclass(frozen=True)
class Placement:
    """Which host runs each instance, with enough of the site to be read alone
    (``--previous`` files, the JSON report)."""

    assignments: tuple[tuple[str, str], ...]  # instance -> host, sorted by instance
    weights: tuple[tuple[str, int], ...]  # instance -> load-balancing weight
    instances: tuple[tuple[str, str, str, int, int], ...] = ()  # (instance, module, kind, cores, memory)
    hosts: tuple[tuple[str, int, int, bool], ...] = ()  # (host, cores, memory, spare), sorted

    @cached_property
    def _where(self) -> dict[str, str]:
        return dict(self.assignments)

    def host_of(self, instance: str) -> str:
        return self._where[instance]

    def instances_on(self, host: str) -> tuple[str, ...]:
        return tuple(i for i, h in self.assignments if h == host)

    def usage(self) -> dict[str, Usage]:
        """Per host: cores and memory used and free."""
        size = {i: (c, m) for i, _, _, c, m in self.instances}
        used = {h: [0, 0] for h, *_ in self.hosts}
        for inst, h in self.assignments:
            c, m = size.get(inst, (0, 0))
            used.setdefault(h, [0, 0])
            used[h][0] += c
            used[h][1] += m
        total = {h: (c, m) for h, c, m, _ in self.hosts}
        return {
            h: Usage(u[0], total.get(h, (0, 0))[0] - u[0], u[1], total.get(h, (0, 0))[1] - u[1])
            for h, u in sorted(used.items())
        }

    def to_json(self) -> str:
        """placement.json (:class:`PlacementDocument`): sorted keys, indent 2."""
        weights = dict(self.weights)
        info = {i: (mod, kind, c, m) for i, mod, kind, c, m in self.instances}
        placed = {}
        for inst, h in self.assignments:
            mod, kind, c, m = info.get(inst, ("", "", 0, 0))
            placed[inst] = PlacedInstance(host=h, module=mod, kind=kind, cores=c, memory=m, weight=weights.get(inst, 1))
        use = self.usage()
        hosts = {
            h: PlacementHost(
                cores=Amount(used=use[h].cores_used, free=use[h].cores_free, total=c),
                memory=Amount(used=use[h].memory_used, free=use[h].memory_free, total=m),
                spare=spare,
                instances=list(self.instances_on(h)),
            )
            for h, c, m, spare in self.hosts
        }
        return PlacementDocument(instances=placed, hosts=hosts).to_text()

    @classmethod
    def from_json(cls, text: str) -> Placement:
        """Read what ``to_json`` wrote; ``ValueError`` says what is malformed."""
        try:
            doc = PlacementDocument.from_text(text)
        except ValueError as e:
            first = e.errors()[0] if isinstance(e, ValidationError) and e.errors() else None
            where = ".".join(str(x) for x in first["loc"]) if first else ""
            why = f"{where}: {first['msg']}" if first else str(e)
            raise ValueError(f"not a placement file: {why}") from None
        insts = doc.instances
        return cls(
            tuple(sorted((i, v.host) for i, v in insts.items())),
            tuple(sorted((i, v.weight) for i, v in insts.items())),
            tuple(sorted((i, v.module, v.kind, v.cores, v.memory) for i, v in insts.items())),
            tuple(sorted((h, v.cores.total, v.memory.total, v.spare) for h, v in doc.hosts.items())),
        )


@dataclass(frozen=True)
class Score:
    """The objective of one placement (see the module docstring)."""

    mode: str
    spare: int  # cores used on spare hosts
    replica_pairs: int
    crossings: int
    max_load: float  # highest cores used / cores of a host
    hosts_used: int

    def key(self) -> tuple[float, ...]:
        if self.mode == "fewest":  # consolidation: hosts in use before replica pairs
            return (self.spare, self.hosts_used, self.replica_pairs, self.crossings)
        if self.mode == "pack":
            return (self.spare, self.replica_pairs, self.hosts_used, self.crossings)
        return (self.spare, self.replica_pairs, self.crossings, round(self.max_load, 9))


@dataclass(frozen=True)
class PlacementResult:
    placement: Placement | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    moved: tuple[tuple[str, str, str], ...] = ()  # (instance, old host, new host)
    score: Score | None = None
    proven_optimal: bool = False  # exact mode only: the solver proved it


@dataclass(frozen=True)
class Inst:
    name: str
    module: int  # index into Problem.modules
    rank: int  # 1-based index among the module's instances


def affinity(site: ir.Site) -> dict[tuple[str, str], int]:
    """Module pairs (sorted names) that a packet visits back to back, so that
    sharing a host saves a trip through the switch (as ``compiler.steering.hostplan``
    wires them), weighted by how many policy directions (symmetric counts
    twice) do so.  A box stops a chain; a ``case`` does not (the switch
    classifies at ingress); a ``copy`` forks its copies at the switch."""
    mods = {m.name: m for m in site.modules}
    out: dict[tuple[str, str], int] = {}

    def walk(p: ir.Pipeline, preds: frozenset[str | None], pairs: set[tuple[str, str]]) -> frozenset[str | None]:
        # preds: modules whose output arrives here directly; None = from the switch
        if isinstance(p, ir.Pass):
            return preds
        if isinstance(p, ir.Drop):
            return frozenset()
        if isinstance(p, ir.Serial):
            for s in p.stages:
                preds = walk(s, preds, pairs)
            return preds
        if isinstance(p, ir.Case):  # decided at ingress (headers do not change): no stop
            outs: frozenset[str | None] = frozenset()
            for _, arm in p.arms:
                outs |= walk(arm, preds, pairs)
            return outs if any(g is None for g, _ in p.arms) else outs | preds
        if isinstance(p, ir.Copy):  # the copies fork at the switch; the rest go straight on
            walk(p.target, frozenset({None}), pairs)
            return preds
        assert isinstance(p, ir.Use)
        if p.is_box or p.target not in mods:
            return frozenset({None})
        m = mods[p.target]
        for a in preds:
            if a is not None and a != m.name:
                pairs.add((min(a, m.name), max(a, m.name)))
        if m.is_sink:
            return frozenset()
        if not p.branches:
            return frozenset({m.name})
        outs = frozenset()
        labels = {lab for lab, _ in p.branches}
        for _, branch in p.branches:
            outs |= walk(branch, frozenset({m.name}), pairs)
        if None not in labels and set(m.outputs) - labels:
            outs |= {m.name}  # unnamed outputs go on
        return outs

    for pol in site.policies:
        pairs: set[tuple[str, str]] = set()
        walk(pol.pipeline, frozenset({None}), pairs)
        for pr in pairs:
            out[pr] = out.get(pr, 0) + (2 if pol.symmetric else 1)
    return dict(sorted(out.items()))


class Problem:
    """A site flattened for placement: indices, sizes, allowed hosts, affinity."""

    def __init__(self, site: ir.Site, unavailable: frozenset[str] = frozenset()) -> None:
        self.site = site
        #: hosts that must not be used (down, drained): no instance is allowed there
        self.unavailable = frozenset(unavailable)
        self.mode = "pack" if site.placement in ("pack", "fewest") else "spread"
        #: consolidation (`fsc plan --consolidate`): ``pack`` with hosts in use
        #: before co-located replica pairs, i.e. the fewest hosts
        self.fewest = site.placement == "fewest"
        self.hosts: list[ir.Host] = sorted(site.hosts, key=lambda h: h.name)
        self.host_index = {h.name: k for k, h in enumerate(self.hosts)}
        self.modules: list[ir.Module] = sorted(site.modules, key=lambda m: m.name)
        self.module_index = {m.name: k for k, m in enumerate(self.modules)}
        self.insts: list[Inst] = sorted(
            (Inst(n, k, r + 1) for k, m in enumerate(self.modules) for r, n in enumerate(m.instance_names())),
            key=lambda i: i.name,
        )
        self.inst_index = {i.name: k for k, i in enumerate(self.insts)}
        self.by_module: list[list[int]] = [[] for _ in self.modules]
        for inst in sorted(self.insts, key=lambda i: (i.module, i.rank)):
            self.by_module[inst.module].append(self.inst_index[inst.name])
        pins: dict[str, set[str]] = {}
        for mod, h in site.pins:
            pins.setdefault(mod, set()).add(h)
        avoids = set(site.avoids)
        self.pins = pins
        self.avoids = avoids
        self.allowed: list[tuple[int, ...]] = []
        for m in self.modules:
            self.allowed.append(
                tuple(
                    k
                    for k, h in enumerate(self.hosts)
                    if m.kind in h.runs
                    and h.name not in self.unavailable
                    and (m.name, h.name) not in avoids
                    and (m.name not in pins or h.name in pins[m.name])
                    and h.cores >= m.cores
                    and h.memory >= m.memory
                )
            )
        self.allowed_set: list[frozenset[int]] = [frozenset(a) for a in self.allowed]
        self.pairs: list[tuple[int, int, int]] = [
            (self.module_index[a], self.module_index[b], w)
            for (a, b), w in affinity(site).items()
            if a in self.module_index and b in self.module_index
        ]
        self.pair_w = {(a, b): w for a, b, w in self.pairs} | {(b, a): w for a, b, w in self.pairs}
        self.neighbours: list[list[tuple[int, int]]] = [[] for _ in self.modules]
        for a, b, w in self.pairs:
            self.neighbours[a].append((b, w))
            self.neighbours[b].append((a, w))

    def size(self, i: int) -> tuple[int, int]:
        m = self.modules[self.insts[i].module]
        return m.cores, m.memory

    def score(self, host_of: list[int]) -> Score:
        """The objective of an assignment (instance index -> host index; -1 = unplaced).
        Counts per module are kept only for the hosts it is on (a site has
        hundreds of modules and hosts, an instance few: a full matrix cost
        the incremental compile's placement check most of its time)."""
        H = len(self.hosts)
        cnt: dict[int, dict[int, int]] = {}
        used = [0] * H
        for i, h in enumerate(host_of):
            if h >= 0:
                a = self.insts[i].module
                row = cnt.get(a)
                if row is None:
                    row = cnt[a] = {}
                row[h] = row.get(h, 0) + 1
                used[h] += self.modules[a].cores
        spare = sum(used[h] for h in range(H) if self.hosts[h].spare)
        rep = sum(n * (n - 1) // 2 for row in cnt.values() for n in row.values())
        cross = 0
        empty: dict[int, int] = {}
        for a, b, w in self.pairs:
            ra, rb = cnt.get(a, empty), cnt.get(b, empty)
            if len(ra) > len(rb):
                ra, rb = rb, ra
            same = sum(x * rb.get(h, 0) for h, x in ra.items())
            cross += w * (self.modules[a].replicas * self.modules[b].replicas - same)
        hosts_used = len({h for row in cnt.values() for h in row})
        max_load = max((used[h] / max(self.hosts[h].cores, 1) for h in range(H)), default=0.0)
        return Score("fewest" if self.fewest else self.mode, spare, rep, cross, max_load, hosts_used)

    def weights(self) -> tuple[float, float, float]:
        """(per spare core, per replica pair, most crossings): tier weights
        large enough that ``cost`` orders placements exactly like ``Score.key``."""
        xmax = sum(w * self.modules[a].replicas * self.modules[b].replicas for a, b, w in self.pairs)
        if self.fewest:
            return (len(self.hosts) + 1) * self.host_cost(), xmax + 1.0, xmax
        mmax = len(self.hosts) * (xmax + 1) + xmax if self.mode == "pack" else xmax + 0.5
        b1 = mmax + 1
        rmax = sum(m.replicas * (m.replicas - 1) // 2 for m in self.modules)
        return rmax * b1 + mmax + 1, b1, xmax

    def host_cost(self) -> float:
        """The cost of one host in use (``pack``): above every crossing, and
        under ``fewest`` above every replica pair too."""
        xmax = sum(w * self.modules[a].replicas * self.modules[b].replicas for a, b, w in self.pairs)
        if self.fewest:
            rmax = sum(m.replicas * (m.replicas - 1) // 2 for m in self.modules)
            return rmax * (xmax + 1) + xmax + 1
        return xmax + 1

    def cost(self, s: Score) -> float:
        """One number ordered like ``Score.key`` (the exact solver's objective)."""
        b2, b1, xmax = self.weights()
        if self.fewest:
            return b2 * s.spare + self.host_cost() * s.hosts_used + b1 * s.replica_pairs + s.crossings
        if self.mode == "pack":
            main = s.hosts_used * (xmax + 1) + s.crossings
        else:
            main = s.crossings + 0.5 * s.max_load
        return b2 * s.spare + b1 * s.replica_pairs + main

    def placement(self, host_of: list[int]) -> Placement:
        assignments = tuple((self.insts[i].name, self.hosts[h].name) for i, h in enumerate(host_of))
        # weight: the user's (`weights 3, 1`), else cores allotted relative to the module's other instances
        g: dict[int, int] = {}
        for i in range(len(self.insts)):
            g[self.insts[i].module] = gcd(g.get(self.insts[i].module, 0), self.size(i)[0])
        weights = tuple(
            (
                self.insts[i].name,
                self.modules[self.insts[i].module].weight_of(self.insts[i].rank)
                or (self.size(i)[0] // g[self.insts[i].module] if g[self.insts[i].module] else 1),
            )
            for i in range(len(self.insts))
        )
        info = tuple(
            (i.name, self.modules[i.module].name, self.modules[i.module].kind, *self.size(k))
            for k, i in enumerate(self.insts)
        )
        hosts = tuple((h.name, h.cores, h.memory, h.spare) for h in self.hosts)
        return Placement(assignments, weights, info, hosts)


class State:
    """A partial assignment with the counters that make a move's delta O(degree).
    ``lim_c`` is a host's usable cores (lowered to close a host for a while)."""

    def __init__(self, p: Problem) -> None:
        self.p = p
        H = len(p.hosts)
        self.host_of = [-1] * len(p.insts)
        self.mod = [i.module for i in p.insts]
        self.ic = [p.modules[a].cores for a in self.mod]
        self.im = [p.modules[a].memory for a in self.mod]
        self.lim_c = [h.cores for h in p.hosts]
        self.used_c = [0] * H
        self.free_m = [h.memory for h in p.hosts]
        self.cap = [max(h.cores, 1) for h in p.hosts]
        self.spare = [1 if h.spare else 0 for h in p.hosts]
        self.cnt = [[0] * H for _ in p.modules]
        # pull[a][h]: sum of w * cnt[b][h] over a's neighbours b (kept by put/take: deltas read it in O(1))
        self.pull = [[0] * H for _ in p.modules]
        self.n_on = [0] * H
        self.frozen: set[int] = set()
        self.top: list[int] = []
        self._touched: list[int] = []  # hosts whose load changed since refresh_top
        self._third: tuple[float, int] = (0.0, 0)  # (load, -host) of the third in ``top``
        self._neg_hosts = [-h for h in range(H)]

    def free_c(self, h: int) -> int:
        return self.lim_c[h] - self.used_c[h]

    def fits(self, i: int, h: int) -> bool:
        return self.lim_c[h] - self.used_c[h] >= self.ic[i] and self.free_m[h] >= self.im[i]

    def frac(self, h: int) -> float:
        return self.used_c[h] / self.cap[h]

    def put(self, i: int, h: int) -> None:
        self.host_of[i] = h
        self.used_c[h] += self.ic[i]
        self.free_m[h] -= self.im[i]
        a = self.mod[i]
        self.cnt[a][h] += 1
        pull = self.pull
        for b, w in self.p.neighbours[a]:
            pull[b][h] += w
        self.n_on[h] += 1
        self._touched.append(h)

    def take(self, i: int) -> int:
        h = self.host_of[i]
        self.host_of[i] = -1
        self.used_c[h] -= self.ic[i]
        self.free_m[h] += self.im[i]
        a = self.mod[i]
        self.cnt[a][h] -= 1
        pull = self.pull
        for b, w in self.p.neighbours[a]:
            pull[b][h] -= w
        self.n_on[h] -= 1
        self._touched.append(h)
        return h

    def refresh_top(self) -> None:
        """The three fullest hosts, ties to the lower index.  Called after
        every move, so it is incremental: hosts neither in the old top nor
        touched since are unchanged and rank below the old third, so the old
        top and the touched hosts decide unless their third falls below it."""
        touched, self._touched = self._touched, []
        used, cap = self.used_c, self.cap
        if len(self.top) == 3 and len(touched) <= 8:
            cands = set(self.top)
            cands.update(touched)
            keys = sorted([(used[h] / cap[h], -h) for h in cands], reverse=True)
            if keys[2] >= self._third:
                self.top = [-k[1] for k in keys[:3]]
                self._third = keys[2]
                return
        keys = sorted(zip(map(truediv, used, cap), self._neg_hosts), reverse=True)[:3]
        self.top = [-k[1] for k in keys]
        self._third = keys[2] if len(keys) == 3 else (0.0, 0)

    def gain(self, a: int, h: int) -> int:
        return self.pull[a][h]

    def delta(self, i: int, h2: int) -> tuple[float, ...]:
        """Change of the objective (plus a smooth tie-break) if ``i`` moved to ``h2``;
        ``self.top`` must be current."""
        d = self.delta_under(i, h2, None)
        assert d is not None
        return d

    def delta_under(self, i: int, h2: int, bound: tuple[float, ...] | None) -> tuple[float, ...] | None:
        """:meth:`delta`, or None when it is surely above ``bound`` (its integer
        terms already are): the load terms are not worked out (most candidates
        of a search, two ``round`` calls each)."""
        h1, a, c = self.host_of[i], self.mod[i], self.ic[i]
        cnt = self.cnt
        ds = c * (self.spare[h2] - self.spare[h1])
        dr = cnt[a][h2] - cnt[a][h1] + 1
        dx = self.pull[a][h1] - self.pull[a][h2]
        dh = (self.n_on[h2] == 0) - (self.n_on[h1] == 1)
        head = self._head(ds, dr, dx, dh)
        if bound is not None and head > bound[: len(head)]:
            return None
        return head + self._load(h1, h2, c)

    def _head(self, ds: int, dr: int, dx: int, dh: int) -> tuple[int, ...]:
        """The integer terms of a delta, in the objective's order."""
        if self.p.mode == "pack":
            return (ds, dh, dr, dx) if self.p.fewest else (ds, dr, dh, dx)
        return (ds, dr, dx)

    def _load(self, h1: int, h2: int, c: int) -> tuple[float, ...]:
        """The load terms of a delta: ``c`` cores go from ``h1`` to ``h2``."""
        f1, f2 = self.frac(h1), self.frac(h2)
        g1, g2 = f1 - c / self.cap[h1], f2 + c / self.cap[h2]
        dsq = g1 * g1 + g2 * g2 - f1 * f1 - f2 * f2
        if self.p.mode == "pack":
            return (round(-dsq, 9),)
        cur = self.frac(self.top[0]) if self.top else 0.0
        other = next((self.frac(h) for h in self.top if h != h1 and h != h2), 0.0)
        return (round(max(other, g1, g2) - cur, 9), round(dsq, 9))

    def swap_delta(self, i: int, j: int, bound: tuple[float, ...] | None = None) -> tuple[float, ...] | None:
        """Like ``delta`` for exchanging the hosts of ``i`` and ``j`` (different modules)."""
        h1, h2, a, b = self.host_of[i], self.host_of[j], self.mod[i], self.mod[j]
        cnt, dc = self.cnt, self.ic[i] - self.ic[j]
        ds = dc * (self.spare[h2] - self.spare[h1])
        dr = cnt[a][h2] - cnt[a][h1] + 1 + cnt[b][h1] - cnt[b][h2] + 1
        pull = self.pull
        dx = pull[a][h1] - pull[a][h2] + pull[b][h2] - pull[b][h1] + 2 * self.p.pair_w.get((a, b), 0)
        head = self._head(ds, dr, dx, 0)
        if bound is not None and head > bound[: len(head)]:
            return None
        return head + self._load(h1, h2, dc)


def previous_hosts(p: Problem, previous: Placement | None) -> list[int]:
    """Each instance's host before (-1: none, or the host is gone); ``m`` and
    ``m#1`` are one instance across a change of the replica count."""
    if previous is None:
        return [-1] * len(p.insts)
    prev = dict(previous.assignments)
    out = []
    for inst in p.insts:
        alias = inst.name[:-2] if inst.name.endswith("#1") else inst.name + "#1"
        out.append(p.host_index.get(prev.get(inst.name, prev.get(alias, "")), -1))
    return out


def keep_previous(st: State, old: list[int]) -> None:
    """Put back, then freeze, every instance that still fits where it was."""
    p = st.p
    for i in sorted((i for i, h in enumerate(old) if h >= 0), key=lambda i: (st.spare[old[i]], p.insts[i].name)):
        h = old[i]
        if h in p.allowed_set[st.mod[i]] and st.fits(i, h):
            st.put(i, h)
            st.frozen.add(i)


def fmt_bytes(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    if n >= GiB:
        return f"{n / GiB:.1f}GiB"
    return f"{n}B" if n < MiB else f"{n / MiB:.1f}MiB"


def fmt_cores(n: int) -> str:
    return f"{n} core" if n == 1 else f"{n} cores"


def names(items: Iterable[str], limit: int = 6, sep: str = ", ") -> str:
    items = list(items)
    shown = sep.join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# ---- diagnostics -----------------------------------------------------------------
def _what(m: ir.Module, n: int = 1) -> str:
    each = " each" if n > 1 else ""
    return f"{fmt_cores(m.cores)}, {fmt_bytes(m.memory)}{each}, {m.kind}"


def no_host(p: Problem, a: int) -> Diagnostic:
    """E0702: kinds, pins, avoids or host sizes leave no host at all."""
    m = p.modules[a]
    pinned = sorted(p.pins.get(m.name, ()))
    why, hints = [], []
    for h in p.hosts:
        if pinned and h.name not in pinned:
            continue
        if h.name in p.unavailable:
            why.append(f"`{h.name}` is down or drained")
            hints.append(f"bring `{h.name}` back (`fsc undrain`, or heal it)")
        elif m.kind not in h.runs:
            why.append(f"`{h.name}` does not run `{m.kind}`")
            hints.append(f"add `{m.kind}` to `runs` of a host")
        elif (m.name, h.name) in p.avoids:
            why.append(f"`{m.name}` avoids `{h.name}`")
            hints.append("remove an `avoid`")
        elif h.cores < m.cores:
            why.append(f"`{h.name}` has {fmt_cores(h.cores)} in all")
            hints.append(f"lower `cores` of `{m.name}` or add cores to a host")
        else:
            why.append(f"`{h.name}` has {fmt_bytes(h.memory)} memory in all")
            hints.append(f"lower `memory` of `{m.name}` or add memory to a host")
    if pinned:
        hints.append(f"pin `{m.name}` to another host")
    scope = f"it is pinned to {names(pinned)}: " if pinned else ""
    detail = names(why) if why else "the site has no module hosts"
    return Diagnostic(
        "E0702",
        f"no host can run `{m.name}` ({_what(m)}): {scope}{detail}",
        m.span,
        hint="; ".join(dict.fromkeys(hints)) or "declare a `host`",
    )


def shortage(p: Problem, a: int, xs: list[int], free_c: list[int], free_m: list[int]) -> Diagnostic:
    """E0701: which resource is short, where, and by how much."""
    m = p.modules[a]
    pinned = p.pins.get(m.name)
    scope = [
        k
        for k, h in enumerate(p.hosts)
        if m.kind in h.runs
        and h.name not in p.unavailable
        and (m.name, h.name) not in p.avoids
        and (not pinned or h.name in pinned)
    ]
    insts = ", ".join(f"`{p.insts[x].name}`" for x in sorted(xs, key=lambda x: p.insts[x].rank))
    where = f"the hosts `{m.name}` is pinned to" if pinned else f"hosts that run `{m.kind}`"
    more = f"pin `{m.name}` to more hosts" if pinned else f"allow more hosts with `runs {m.kind}`"
    if any((m.name, h.name) in p.avoids for h in p.hosts):
        more += ", or remove an `avoid`"
    n = len(xs)
    fc = [free_c[k] for k in scope]
    fm = [free_m[k] for k in scope]
    head = f"cannot place {insts} ({_what(m, n)})"
    if max(fc) < m.cores:
        short, total = m.cores - max(fc), n * m.cores - sum(max(f, 0) for f in fc)
        listing = names(f"{p.hosts[k].name}: {free_c[k]} free" for k in scope)
        msg = f"{head}: {where} have {fmt_cores(max(fc))} free at most ({listing}); {fmt_cores(short)} short"
        if n > 1:
            msg += f", {fmt_cores(total)} short for all {n}"
        hint = f"add cores to a host, lower `cores` of `{m.name}`, or {more}"
    elif max(fm) < m.memory:
        short, total = m.memory - max(fm), n * m.memory - sum(max(f, 0) for f in fm)
        listing = names(f"{p.hosts[k].name}: {fmt_bytes(free_m[k])} free" for k in scope)
        msg = f"{head}: {where} have {fmt_bytes(max(fm))} memory free at most ({listing}); {fmt_bytes(short)} short"
        if n > 1:
            msg += f", {fmt_bytes(total)} short for all {n}"
        hint = f"add memory to a host, lower `memory` of `{m.name}`, or {more}"
    else:
        listing = names(
            (f"{p.hosts[k].name}: {fmt_cores(free_c[k])}, {fmt_bytes(free_m[k])} free" for k in scope), sep="; "
        )
        msg = f"{head}: no host among {where} has both {fmt_cores(m.cores)} and {fmt_bytes(m.memory)} free ({listing})"
        hint = f"add cores or memory to a host, lower `cores` or `memory` of `{m.name}`, or {more}"
    # what must fit into these hosts at all (modules allowed nowhere else) against what they have
    inside = set(scope)
    must = [i for i in range(len(p.insts)) if set(p.allowed[p.insts[i].module]) <= inside]
    need_c, have_c = sum(p.size(i)[0] for i in must), sum(p.hosts[k].cores for k in scope)
    need_m, have_m = sum(p.size(i)[1] for i in must), sum(p.hosts[k].memory for k in scope)
    if need_c > have_c:
        msg += (
            f"; what can only run there needs {fmt_cores(need_c)}, these hosts have {have_c}: "
            f"{fmt_cores(need_c - have_c)} short in all"
        )
    if need_m > have_m:
        msg += (
            f"; what can only run there needs {fmt_bytes(need_m)} memory, these hosts have "
            f"{fmt_bytes(have_m)}: {fmt_bytes(need_m - have_m)} short in all"
        )
    elif need_c <= have_c and sum(max(f, 0) for f in fc) >= n * m.cores and sum(max(f, 0) for f in fm) >= n * m.memory:
        hint += " (free capacity is fragmented: exact placement, `optimal`, may find room)"
    return Diagnostic("E0701", msg, m.span, hint=hint)
