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
directly follows A in a pipeline with no box between (see
``compiler.placement.affinity``).

The search state with its incremental counters is :mod:`.state`; the result
types are :mod:`.result`; the E0701/E0702 diagnostics are :mod:`.explain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

from compiler import ir
from compiler.placement.affinity import affinity
from compiler.placement.result import Placement, Score


@dataclass(frozen=True)
class Inst:
    name: str
    module: int  # index into Problem.modules
    rank: int  # 1-based index among the module's instances


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
