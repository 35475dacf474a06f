"""The default placement search: construction, feasibility repair, local search, iterated search, exhaustive.

Deterministic (no clock, a fixed seed) and bounded by counted work; the steps are described in
:mod:`compiler.placement.place`.
"""

from __future__ import annotations

import random

from compiler.placement.construct import _build, _order, _surely_short
from compiler.placement.iterated_search import _iterate, _restore, _unjam
from compiler.placement.local_search import _local_search
from compiler.placement.model import Problem
from compiler.placement.small import exhaustive
from compiler.placement.state import State

ILS_LIMIT = 150  # ruin-and-recreate rounds only for sites up to this many instances
ILS_BUDGET = 25_000  # evaluations spent in those rounds
UNJAM_STEPS = 20_000  # min-conflicts steps when the greedy construction leaves instances out


def heuristic(p: Problem, previous: list[int] | None = None) -> tuple[State, list[int]]:
    """Deterministic placement; returns the state and the instances left unplaced."""
    order = _order(p)
    previous = previous or [-1] * len(p.insts)
    st, unplaced = _build(p, previous, order)
    if unplaced and not _surely_short(p):
        _unjam(st, random.Random(0x5EED), min(UNJAM_STEPS, 500 + 100 * len(st.host_of)))
        _iterate(st, ILS_BUDGET)
        unplaced = [i for i in order if st.host_of[i] < 0]
    if unplaced or len(order) < len(p.insts):  # failed, or E0702 modules: only diagnostics matter
        return st, unplaced
    _local_search(st)
    if len(st.host_of) <= ILS_LIMIT:
        _iterate(st, ILS_BUDGET)
        best = exhaustive(st)  # tiny sites: settle what the searches may have missed
        if best is not None and p.score(best).key() < p.score(st.host_of).key():
            _restore(st, best)
    return st, []
