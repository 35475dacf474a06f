"""Placement: which module host runs each processing-module instance.

``place`` is a pure stage: checked site in, placement and diagnostics out.  The
default heuristic is deterministic and fast (greedy construction in
first-fit-decreasing order, then steepest local search with moves and swaps);
``optimal=True`` hands the same objective to a MILP solver
(``compiler.placement_exact``).  The objective is defined in
``compiler.placement_model``.  With a ``previous`` placement, every instance
that still fits where it was stays there, so re-compiling an unchanged site
moves nothing and adding a module does not shuffle the others.
"""

from __future__ import annotations

import heapq

from compiler import ir
from compiler.placement_model import (BANDS, Placement, PlacementResult, Problem, Score, Usage,
                                      band_of, fmt_bytes, fmt_cores, names)
from fslang.diagnostics import Diagnostic

__all__ = ["place", "Placement", "PlacementResult", "Score", "Usage", "Problem"]

MAX_PASSES = 30
EVAL_BUDGET = 300_000  # move evaluations: bounds time deterministically (no clock)
SWAP_LIMIT = 400  # full neighbourhoods and swaps only for sites up to this many instances
CANDIDATES = 4  # on larger sites: best-loaded hosts tried per instance, besides its neighbours'
EXACT_TIME_LIMIT = 10.0


class State:
    """A partial assignment with the counters that make a move's delta O(degree).
    ``lim_c`` is a host's usable cores: its cores, or fewer under a spread band."""

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
        self.n_on = [0] * H
        self.frozen: set[int] = set()
        self.top: list[int] = []

    def limit(self, band: int) -> None:
        """Cap every host at ``band`` tenths of its cores (never below what it holds)."""
        for h, host in enumerate(self.p.hosts):
            self.lim_c[h] = max(min(host.cores, (host.cores * band) // BANDS), self.used_c[h])

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
        self.cnt[self.mod[i]][h] += 1
        self.n_on[h] += 1

    def take(self, i: int) -> int:
        h = self.host_of[i]
        self.host_of[i] = -1
        self.used_c[h] -= self.ic[i]
        self.free_m[h] += self.im[i]
        self.cnt[self.mod[i]][h] -= 1
        self.n_on[h] -= 1
        return h

    def refresh_top(self) -> None:
        self.top = heapq.nlargest(3, range(len(self.cap)), key=lambda h: (self.frac(h), -h))

    def gain(self, a: int, h: int) -> int:
        return sum(w * self.cnt[b][h] for b, w in self.p.neighbours[a])

    def delta(self, i: int, h2: int) -> tuple[float, ...]:
        """Change of the objective (plus a smooth tie-break) if ``i`` moved to ``h2``;
        ``self.top`` must be current.  Under a band the band cannot rise (capacity)."""
        h1, a, c = self.host_of[i], self.mod[i], self.ic[i]
        cnt = self.cnt
        ds = self.spare[h2] - self.spare[h1]
        dr = cnt[a][h2] - cnt[a][h1] + 1
        dx = sum(w * (cnt[b][h1] - cnt[b][h2]) for b, w in self.p.neighbours[a])
        f1, f2 = self.frac(h1), self.frac(h2)
        g1, g2 = f1 - c / self.cap[h1], f2 + c / self.cap[h2]
        dsq = g1 * g1 + g2 * g2 - f1 * f1 - f2 * f2
        if self.p.mode == "pack":
            dh = (self.n_on[h2] == 0) - (self.n_on[h1] == 1)
            return (ds, dr, dh, dx, round(-dsq, 9))
        cur = self.frac(self.top[0]) if self.top else 0.0
        other = next((self.frac(h) for h in self.top if h != h1 and h != h2), 0.0)
        new = max(other, g1, g2)
        return (ds, dr, band_of(new) - band_of(cur), dx, round(new - cur, 9), round(dsq, 9))


def _greedy_key(st: State, i: int, h: int, how: str) -> tuple[float, ...]:
    a, c = st.mod[i], st.ic[i]
    after = (st.used_c[h] + c) / st.cap[h]
    if how == "fit":  # best fit on the tighter resource: for feasibility
        slack = min((st.free_c(h) - c) / st.cap[h], (st.free_m[h] - st.im[i]) / max(st.p.hosts[h].memory, 1))
        return (st.spare[h], slack, st.cnt[a][h], -st.gain(a, h), h)
    if how == "pack":
        return (st.spare[h], st.cnt[a][h], st.n_on[h] == 0, -st.gain(a, h), -after, h)
    return (st.spare[h], st.cnt[a][h], -st.gain(a, h), after, h)


def _order(p: Problem) -> list[int]:
    """Biggest first (normalised to the average host), most constrained first."""
    hs = [h for h in p.hosts if not h.spare] or p.hosts
    ac = max(sum(h.cores for h in hs) / max(len(hs), 1), 1)
    am = max(sum(h.memory for h in hs) / max(len(hs), 1), 1)

    def key(i: int) -> tuple[float, int, str, int]:
        m = p.modules[p.insts[i].module]
        return (-max(m.cores / ac, m.memory / am), len(p.allowed[p.insts[i].module]), m.name, p.insts[i].rank)
    return sorted((i for i in range(len(p.insts)) if p.allowed[p.insts[i].module]), key=key)


def _construct(st: State, order: list[int], how: str) -> list[int]:
    unplaced = []
    for i in order:
        if st.host_of[i] >= 0:
            continue
        cands = [h for h in st.p.allowed[st.mod[i]] if st.fits(i, h)]
        if not cands:
            unplaced.append(i)
            continue
        st.put(i, min(cands, key=lambda h: _greedy_key(st, i, h, how)))
    return unplaced


def _repair(st: State, x: int, allow_frozen: bool) -> bool:
    """Make room for ``x`` on one host by moving instances away (ejection)."""
    p = st.p
    for h in sorted(p.allowed[st.mod[x]], key=lambda h: (st.spare[h], -(st.free_c(h) / st.cap[h]), h)):
        moved: list[tuple[int, int]] = []
        victims = sorted((j for j in range(len(st.host_of)) if st.host_of[j] == h
                          and (allow_frozen or j not in st.frozen)), key=lambda j: (-st.ic[j], -st.im[j], j))
        for j in victims:
            if st.fits(x, h):
                break
            targets = [g for g in p.allowed[st.mod[j]] if g != h and st.fits(j, g)]
            if targets:
                moved.append((j, h))
                st.take(j)
                st.put(j, min(targets, key=lambda g: _greedy_key(st, j, g, p.mode)))
        if st.fits(x, h):
            st.put(x, h)
            return True
        for j, g in reversed(moved):
            st.take(j)
            st.put(j, g)
    return False


def _better(d: tuple[float, ...], frozen: bool) -> bool:
    return d < (0,) * len(d) and (not frozen or d[0] < 0)  # kept instances move only off a spare


def _candidates(st: State, i: int, by_load: list[int]) -> list[int]:
    """Hosts worth trying for ``i``: all on small sites; else where its pipeline
    neighbours run plus the few best-loaded hosts that could take it."""
    p, a = st.p, st.mod[i]
    if len(st.host_of) <= SWAP_LIMIT:
        return list(p.allowed[a])
    allowed = p.allowed_set[a]
    out = {st.host_of[j] for b, _ in p.neighbours[a] for j in p.by_module[b]} & allowed
    k = 0
    for h in by_load:
        if h in allowed and not st.spare[h] and st.cnt[a][h] == 0 and st.fits(i, h):
            out.add(h)
            k += 1
            if k == CANDIDATES:
                break
    return sorted(out)


def _local_search(st: State) -> None:
    """Steepest single moves (plus swaps on small sites, evacuations under pack)
    until nothing improves; each accepted step lowers the objective, so it ends."""
    p = st.p
    evals = 0
    sign = -1 if p.mode == "pack" else 1
    for _ in range(MAX_PASSES):
        improved = False
        st.refresh_top()
        by_load = sorted(range(len(p.hosts)), key=lambda h: (sign * st.frac(h), h))
        for i in range(len(st.host_of)):
            h1 = st.host_of[i]
            if i in st.frozen and not st.spare[h1]:
                continue
            best, bh = None, -1
            for h2 in _candidates(st, i, by_load):
                if h2 != h1 and st.fits(i, h2):
                    d = st.delta(i, h2)
                    evals += 1
                    if best is None or d < best:
                        best, bh = d, h2
            if best is not None and _better(best, i in st.frozen):
                st.take(i)
                st.put(i, bh)
                st.refresh_top()
                improved = True
        if len(st.host_of) <= SWAP_LIMIT:
            improved |= _swap_pass(st)
        if p.mode == "pack":
            improved |= _evacuate(st)
        if not improved or evals > EVAL_BUDGET:
            break


def _swap_pass(st: State) -> bool:
    """Exchange two instances of different modules: moves alone cannot when hosts are full."""
    p = st.p
    on: list[list[int]] = [[] for _ in p.hosts]
    for j, h in enumerate(st.host_of):
        on[h].append(j)
    improved = False
    for i in range(len(st.host_of)):
        if i in st.frozen:
            continue
        a = st.mod[i]
        for h2 in p.allowed[a]:
            h1 = st.host_of[i]
            if h2 == h1:
                continue
            for j in list(on[h2]):
                b = st.mod[j]
                if b == a or j in st.frozen or h1 not in p.allowed_set[b]:
                    continue
                dc, dm = st.ic[i] - st.ic[j], st.im[i] - st.im[j]
                if st.free_c(h2) < dc or st.free_m[h2] < dm or st.free_c(h1) < -dc or st.free_m[h1] < -dm:
                    continue
                d1 = st.delta(i, h2)
                st.take(i)
                st.put(i, h2)
                st.refresh_top()
                d2 = st.delta(j, h1)
                if _better(tuple(round(x + y, 9) for x, y in zip(d1, d2)), False):
                    st.take(j)
                    st.put(j, h1)
                    on[h1].remove(i)
                    on[h2].remove(j)
                    on[h2].append(i)
                    on[h1].append(j)
                    st.refresh_top()
                    improved = True
                    break
                st.take(i)
                st.put(i, h1)
                st.refresh_top()
            if st.host_of[i] != h1:
                break
    return improved


def _evacuate(st: State) -> bool:
    """``pack``: empty a lightly used host into the others when that scores better."""
    p = st.p
    improved = False
    for h in sorted((h for h in range(len(p.hosts)) if st.n_on[h]), key=lambda h: (st.frac(h), h)):
        mine = sorted((j for j, g in enumerate(st.host_of) if g == h), key=lambda j: (-st.ic[j], j))
        if not mine or any(j in st.frozen for j in mine):
            continue
        total, done = [0.0] * 4, []
        for j in mine:
            cands = [g for g in p.allowed[st.mod[j]] if g != h and st.n_on[g] and st.fits(j, g)]
            if not cands:
                break
            g = min(cands, key=lambda g: (st.delta(j, g), g))
            total = [x + y for x, y in zip(total, st.delta(j, g))]
            st.take(j)
            st.put(j, g)
            done.append(j)
        if len(done) == len(mine) and tuple(round(x, 9) for x in total) < (0, 0, 0, 0):
            improved = True
            continue
        for j in reversed(done):
            st.take(j)
            st.put(j, h)
    return improved


def _previous_host(p: Problem, previous: Placement | None, i: int) -> str | None:
    """The host ``i`` had before; ``m`` and ``m#1`` are one instance across a replica change."""
    if previous is None:
        return None
    prev = dict(previous.assignments)
    name = p.insts[i].name
    alias = name[:-2] if name.endswith("#1") else name + "#1"
    return prev.get(name, prev.get(alias))


def keep_previous(st: State, previous: Placement | None) -> None:
    """Put back, then freeze, every instance that still fits where it was."""
    p = st.p
    if previous is None:
        return
    old = {i: p.host_index.get(_previous_host(p, previous, i) or "", -1) for i in range(len(p.insts))}
    for i in sorted((i for i in old if old[i] >= 0), key=lambda i: (st.spare[old[i]], p.insts[i].name)):
        h = old[i]
        if h in p.allowed[st.mod[i]] and st.fits(i, h):
            st.put(i, h)
            st.frozen.add(i)


def _tiers(st: State) -> tuple[int, int]:
    """(instances on spares, co-located replica pairs) of a state."""
    spare = sum(st.n_on[h] for h in range(len(st.n_on)) if st.spare[h])
    return spare, sum(n * (n - 1) // 2 for row in st.cnt for n in row)


def _build(p: Problem, previous: Placement | None, order: list[int], band: int) -> tuple[State, list[int]]:
    """Construct (greedy, then best fit if that fails) and repair; ``band`` caps host load."""
    best: tuple[State, list[int]] | None = None
    for how in (p.mode, "fit"):
        st = State(p)
        keep_previous(st, previous)
        if band < BANDS:
            st.limit(band)
        unplaced = _construct(st, order, how)
        if unplaced:
            unplaced = [x for x in unplaced if not _repair(st, x, False)]
            unplaced = [x for x in unplaced if not _repair(st, x, True)]
        if best is None or len(unplaced) < len(best[1]):
            best = (st, unplaced)
        if not unplaced:
            break
    assert best is not None
    return best


def heuristic(p: Problem, previous: Placement | None = None) -> tuple[State, list[int]]:
    """Deterministic placement; returns the state and the instances left unplaced.
    Under spread, the lowest load band that costs no spare or replica spreading
    is found first (construction only), then local search runs within it."""
    order = _order(p)
    st, unplaced = _build(p, previous, order, BANDS)
    if unplaced:
        return st, unplaced
    if p.mode == "spread" and st.host_of:
        base = _tiers(st)
        demand = sum(st.ic)
        capacity = sum(h.cores for h in p.hosts if not h.spare) or 1
        top = band_of(max(st.frac(h) for h in range(len(p.hosts))))
        for band in range(max(1, band_of(demand / capacity)), top):
            cand, left = _build(p, previous, order, band)
            if not left and _tiers(cand) <= base:
                st = cand
                break
    _local_search(st)
    return st, []


def place(site: ir.Site, previous: Placement | None = None, optimal: bool = False) -> PlacementResult:
    """Assign every module instance to a host; errors E0701 (capacity) and E0702 (no host)."""
    p = Problem(site)
    diags = [_no_host(p, a) for a in range(len(p.modules)) if not p.allowed[a]]
    st, unplaced = heuristic(p, previous)
    by_mod: dict[int, list[int]] = {}
    for x in unplaced:
        by_mod.setdefault(st.mod[x], []).append(x)
    host_of: list[int] | None = st.host_of if not diags and not unplaced else None
    proven = False
    if optimal and not diags:
        from compiler import placement_exact
        fixed = {i: h for i, h in enumerate(st.host_of) if i in st.frozen and not st.spare[h]}
        prev = {i: p.host_index.get(_previous_host(p, previous, i) or "", -1) for i in range(len(p.insts))}
        sol, status, note = placement_exact.solve(p, fixed, host_of, prev, EXACT_TIME_LIMIT)
        if note:
            diags.append(Diagnostic("W0701", note))
        if sol is not None:
            host_of, proven, by_mod = sol, status == "optimal", {}
        elif status == "infeasible" and host_of is not None:  # cannot happen unless the solver errs
            diags.append(Diagnostic("W0701", "the exact solver found no placement; the heuristic's is used"))
    diags += [_short(p, st, a, xs) for a, xs in sorted(by_mod.items())]
    if host_of is None or any(d.severity == "error" for d in diags):
        return PlacementResult(None, diags)
    placement = p.placement(host_of)
    moved = []
    for i, h in enumerate(host_of):
        old = _previous_host(p, previous, i)
        if old is not None and old != p.hosts[h].name:
            moved.append((p.insts[i].name, old, p.hosts[h].name))
    return PlacementResult(placement, diags, tuple(moved), p.score(host_of), proven)


# ---- diagnostics -----------------------------------------------------------------
def _what(m: ir.Module, n: int = 1) -> str:
    each = " each" if n > 1 else ""
    return f"{fmt_cores(m.cores)}, {fmt_bytes(m.memory)}{each}, {m.kind}"


def _no_host(p: Problem, a: int) -> Diagnostic:
    """E0702: kinds, pins, avoids or host sizes leave no host at all."""
    m = p.modules[a]
    pinned = sorted(p.pins.get(m.name, ()))
    why, hints = [], []
    for h in p.hosts:
        if pinned and h.name not in pinned:
            continue
        if m.kind not in h.runs:
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
    return Diagnostic("E0702", f"no host can run `{m.name}` ({_what(m)}): {scope}{detail}", m.span,
                      hint="; ".join(dict.fromkeys(hints)) or "declare a `host`")


def _short(p: Problem, st: State, a: int, xs: list[int]) -> Diagnostic:
    """E0701: which resource is short, where, and by how much."""
    m = p.modules[a]
    pinned = p.pins.get(m.name)
    scope = [k for k, h in enumerate(p.hosts) if m.kind in h.runs and (m.name, h.name) not in p.avoids
             and (not pinned or h.name in pinned)]
    insts = ", ".join(f"`{p.insts[x].name}`" for x in sorted(xs, key=lambda x: p.insts[x].rank))
    where = f"the hosts `{m.name}` is pinned to" if pinned else f"hosts that run `{m.kind}`"
    more = (f"pin `{m.name}` to more hosts" if pinned else f"allow more hosts with `runs {m.kind}`")
    if any((m.name, h.name) in p.avoids for h in p.hosts):
        more += ", or remove an `avoid`"
    n = len(xs)
    fc = [st.free_c(k) for k in scope]
    fm = [st.free_m[k] for k in scope]
    head = f"cannot place {insts} ({_what(m, n)})"
    if max(fc) < m.cores:
        short, total = m.cores - max(fc), n * m.cores - sum(max(f, 0) for f in fc)
        listing = names(f"{p.hosts[k].name}: {st.free_c(k)} free" for k in scope)
        msg = f"{head}: {where} have {fmt_cores(max(fc))} free at most ({listing}); {fmt_cores(short)} short"
        if n > 1:
            msg += f", {fmt_cores(total)} short for all {n}"
        hint = f"add cores to a host, lower `cores` of `{m.name}`, or {more}"
    elif max(fm) < m.memory:
        short, total = m.memory - max(fm), n * m.memory - sum(max(f, 0) for f in fm)
        listing = names(f"{p.hosts[k].name}: {fmt_bytes(st.free_m[k])} free" for k in scope)
        msg = f"{head}: {where} have {fmt_bytes(max(fm))} memory free at most ({listing}); {fmt_bytes(short)} short"
        if n > 1:
            msg += f", {fmt_bytes(total)} short for all {n}"
        hint = f"add memory to a host, lower `memory` of `{m.name}`, or {more}"
    else:
        listing = names(f"{p.hosts[k].name}: {fmt_cores(st.free_c(k))}, {fmt_bytes(st.free_m[k])} free"
                        for k in scope)
        msg = (f"{head}: no host among {where} has both {fmt_cores(m.cores)} and {fmt_bytes(m.memory)} "
               f"free ({listing})")
        hint = f"add cores or memory to a host, lower `cores` or `memory` of `{m.name}`, or {more}"
    if sum(max(f, 0) for f in fc) >= n * m.cores and sum(max(f, 0) for f in fm) >= n * m.memory:
        hint += " (free capacity is fragmented: exact placement, `optimal`, may find room)"
    return Diagnostic("E0701", msg, m.span, hint=hint)
