"""Placement: which module host runs each processing-module instance.

``place`` is a pure stage: checked site in, placement and diagnostics out.  The
objective is defined in ``compiler.placement.model``; ``optimal=True`` hands it
to a MILP solver (``compiler.placement.exact``).  The default heuristic is
deterministic (no clock, a fixed seed) and bounded by counted work:

1. keep every instance of ``previous`` that still fits where it was (frozen);
2. greedy construction, biggest and most constrained instances first, each to
   the host with the best (spare, replica, crossings, load) key; if some do
   not fit, best-fit construction, ejection repair, then min-conflicts search;
3. steepest local search: single moves, swaps, two-move ejection chains and
   moves of a whole pipeline neighbourhood (small sites), evacuating a host
   (``pack``); on larger sites only moves to a few candidate hosts;
4. small sites: ruin-and-recreate rounds (iterated local search).
So re-compiling an unchanged site moves nothing and adding a module does not
shuffle the others.

With ``unavailable`` hosts (down or drained, named by the platform) and a
``previous`` placement, only what must move moves (:func:`displace`): every
other instance stays where it is, the displaced ones go to spare hosts first
(that is what spares are kept free for), and no search reshuffles the rest, so
policies that did not use the lost host keep their rules.

Modules: :mod:`.construct` (greedy construction, repair), :mod:`.local_search`
(moves, swaps, ejection chains, groups, evacuations), :mod:`.iterated_search`
(ruin-and-recreate, min-conflicts), :mod:`.heuristic` (the default search in
that order) and :mod:`.displace` (placement while hosts are unavailable).
"""

from __future__ import annotations

from compiler import ir
from compiler.placement.displace import displace
from compiler.placement.explain import no_host, shortage
from compiler.placement.heuristic import heuristic
from compiler.placement.model import Problem, previous_hosts
from compiler.placement.result import Placement, PlacementResult, Score, Usage
from fslang.diagnostics import Diagnostic

__all__ = ["place", "Placement", "PlacementResult", "Score", "Usage", "Problem"]

EXACT_TIME_LIMIT = 10.0


def place(
    site: ir.Site, previous: Placement | None = None, optimal: bool = False, unavailable: frozenset[str] = frozenset()
) -> PlacementResult:
    """Assign every module instance to a host; errors E0701 (capacity) and E0702 (no host).
    ``unavailable``: hosts that must not be used (down, drained); with a
    ``previous`` placement only the instances that must move do (:func:`displace`)."""
    p = Problem(site, unavailable)
    prev = previous_hosts(p, previous)
    stable = bool(p.unavailable) and previous is not None
    warnings: list[Diagnostic] = []
    if stable:
        st, unplaced, warnings = displace(p, prev)
        optimal = False  # the exact solver would move whatever scores better
    else:  # consolidation places afresh (nothing frozen where it was); ``prev`` only names replicas
        st, unplaced = heuristic(p, [-1] * len(prev) if p.fewest else prev)
    left = {st.mod[i] for i in unplaced}
    diags = [no_host(p, a) for a in range(len(p.modules)) if not p.allowed[a] and (not stable or a in left)]
    unplaced = [i for i in unplaced if p.allowed[st.mod[i]]]  # E0702 says it for the others
    diags += warnings
    by_mod: dict[int, list[int]] = {}
    for x in unplaced:
        by_mod.setdefault(st.mod[x], []).append(x)
    by_mod = {a: p.by_module[a][-len(xs) :] for a, xs in by_mod.items()}  # replicas are alike: name the last
    errors = any(d.severity == "error" for d in diags)
    host_of: list[int] | None = st.host_of if not errors and not unplaced else None
    proven = False
    if optimal and not errors:
        from compiler.placement import exact as placement_exact

        fixed = {
            i: h
            for i, h in enumerate(st.host_of)
            if i in st.frozen and h == prev[i] and not st.spare[h] and not p.fewest
        }
        sol, status, note = placement_exact.solve(p, fixed, host_of, dict(enumerate(prev)), EXACT_TIME_LIMIT)
        if status == "infeasible" and fixed:  # keeping every instance in place is what fails
            sol, status, note = placement_exact.solve(p, {}, host_of, dict(enumerate(prev)), EXACT_TIME_LIMIT)
        if note:
            diags.append(Diagnostic("W0701", note))
        if sol is not None and (host_of is None or p.score(sol).key() <= p.score(host_of).key()):
            host_of, proven, by_mod = sol, status == "optimal", {}
        elif status == "infeasible" and host_of is not None:  # cannot happen unless the solver errs
            diags.append(Diagnostic("W0701", "the exact solver found no placement; the heuristic's is used"))
    diags += [
        shortage(p, a, xs, [st.free_c(h) for h in range(len(p.hosts))], st.free_m) for a, xs in sorted(by_mod.items())
    ]
    if host_of is None or any(d.severity == "error" for d in diags):
        return PlacementResult(None, diags)
    placement = p.placement(host_of)
    moved = []
    old_names = dict(previous.assignments) if previous else {}
    for i, h in enumerate(host_of):
        old = old_names.get(p.insts[i].name) or (p.hosts[prev[i]].name if prev[i] >= 0 else None)
        if old is not None and old != p.hosts[h].name:
            moved.append((p.insts[i].name, old, p.hosts[h].name))
    return PlacementResult(placement, diags, tuple(moved), p.score(host_of), proven)
