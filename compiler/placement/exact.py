"""Exact placement: the objective of ``compiler.placement.model`` as a MILP (HiGHS).

Replicas of a module are interchangeable, so the model counts instances per
(module, host) instead of assigning each one: no symmetric copies of a
solution, which keeps small sites within the time limit.  The count is unary,
n[a,h] = z[a,h,1] + ... + z[a,h,K] with z[a,h,k] >= z[a,h,k+1], which makes the
replica-pair term linear ((k-1) per z[a,h,k]) and the crossings term
w * (r_a r_b - sum_h n[a,h] n[b,h]) linear through y <= z[a,h,k], y <= z[b,h,l].
"""

from __future__ import annotations

import os
import sys
from math import gcd

from compiler.placement.model import Problem

_banner_shown = False


def _highs():
    """A silent solver: HiGHS prints a banner on its first construction in a process."""
    global _banner_shown
    import highspy

    if _banner_shown:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _banner_shown = True
    h.setOptionValue("output_flag", False)
    return h


class _Model:
    """Columns and rows collected in Python, handed to HiGHS in one go."""

    def __init__(self) -> None:
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.cost: list[float] = []
        self.integer: list[int] = []
        self.rows: list[tuple[float, float, dict[int, float]]] = []
        self.mins: list[tuple[int, int, int]] = []  # y = min(z1, z2) at an optimum
        self.maxes: list[tuple[int, dict[int, float]]] = []  # v = max of those sums (t, u)

    def var(self, lb: float, ub: float, cost: float, integer: bool) -> int:
        self.lb.append(lb)
        self.ub.append(ub)
        self.cost.append(cost)
        if integer:
            self.integer.append(len(self.lb) - 1)
        return len(self.lb) - 1

    def row(self, lo: float, hi: float, coefs: dict[int, float]) -> None:
        self.rows.append((lo, hi, coefs))


def solve(
    p: Problem, fixed: dict[int, int], start: list[int] | None, prev: dict[int, int], time_limit: float
) -> tuple[list[int] | None, str, str | None]:
    """Returns (instance -> host index, status, note for a warning).  ``fixed``
    instances stay on their host; ``start`` seeds the search; ``prev`` decides
    which replica gets which of its module's hosts."""
    try:
        import highspy
        import numpy as np
    except ImportError:
        return None, "unavailable", "exact placement needs the `highspy` package; the heuristic placement is used"
    inf = highspy.kHighsInf
    b2, b1, xmax = p.weights()
    md = _Model()
    H = len(p.hosts)
    fixed_n = [[0] * H for _ in p.modules]
    for i, h in fixed.items():
        fixed_n[p.insts[i].module][h] += 1
    mem_unit = 0
    for x in [m.memory for m in p.modules] + [h.memory for h in p.hosts]:
        mem_unit = gcd(mem_unit, x)
    mem_unit = mem_unit or 1
    z: dict[tuple[int, int], list[int]] = {}
    for a, m in enumerate(p.modules):
        for h in p.allowed[a]:
            host = p.hosts[h]
            kmax = min(
                m.replicas,
                host.cores // m.cores if m.cores else m.replicas,
                host.memory // m.memory if m.memory else m.replicas,
            )
            cols = []
            for k in range(1, kmax + 1):
                cost = b1 * (k - 1) + (b2 * m.cores if host.spare else 0.0)
                cols.append(md.var(1.0 if k <= fixed_n[a][h] else 0.0, 1.0, cost, True))
            z[a, h] = cols
            for c1, c2 in zip(cols, cols[1:]):
                md.row(0.0, inf, {c1: 1.0, c2: -1.0})
        md.row(m.replicas, m.replicas, {c: 1.0 for h in p.allowed[a] for c in z.get((a, h), [])})
    for h, host in enumerate(p.hosts):
        cores = {c: float(p.modules[a].cores) for (a, g), cols in z.items() if g == h for c in cols}
        mem = {c: p.modules[a].memory / mem_unit for (a, g), cols in z.items() if g == h for c in cols}
        md.row(-inf, host.cores, cores)
        md.row(-inf, host.memory / mem_unit, mem)
    if p.mode == "pack":
        for h in range(H):
            firsts = [cols[0] for (a, g), cols in z.items() if g == h and cols]
            if firsts:
                u = md.var(0.0, 1.0, p.host_cost(), True)
                md.maxes.extend((u, {c: 1.0}) for c in firsts)
                for c in firsts:
                    md.row(0.0, inf, {u: 1.0, c: -1.0})
    else:
        t = md.var(0.0, inf, 0.5, False)
        for h, host in enumerate(p.hosts):
            coefs = {c: -p.modules[a].cores / max(host.cores, 1) for (a, g), cols in z.items() if g == h for c in cols}
            md.maxes.append((t, {c: -v for c, v in coefs.items()}))
            coefs[t] = 1.0
            md.row(0.0, inf, coefs)
    for a, b, w in p.pairs:
        for h in sorted(set(p.allowed[a]) & set(p.allowed[b])):
            for ca in z.get((a, h), []):
                for cb in z.get((b, h), []):
                    y = md.var(0.0, 1.0, -float(w), False)
                    md.mins.append((y, ca, cb))
                    md.row(-inf, 0.0, {y: 1.0, ca: -1.0})
                    md.row(-inf, 0.0, {y: 1.0, cb: -1.0})

    hs = _highs()
    n = len(md.lb)
    empty_i = np.array([], dtype=np.int32)
    hs.addCols(n, np.array(md.cost), np.array(md.lb), np.array(md.ub), 0, empty_i, empty_i, np.array([]))
    starts: list[int] = []
    index: list[int] = []
    value: list[float] = []
    for _, _, coefs in md.rows:
        starts.append(len(index))
        for c, v in sorted(coefs.items()):
            index.append(c)
            value.append(v)
    hs.addRows(
        len(md.rows),
        np.array([r[0] for r in md.rows], dtype=float),
        np.array([r[1] for r in md.rows], dtype=float),
        len(index),
        np.array(starts, dtype=np.int32),
        np.array(index, dtype=np.int32),
        np.array(value, dtype=float),
    )
    hs.changeColsIntegrality(
        len(md.integer), np.array(md.integer, dtype=np.int32), np.ones(len(md.integer), dtype=np.uint8)
    )
    for opt, val in (
        ("time_limit", float(time_limit)),
        ("mip_rel_gap", 0.0),
        ("mip_abs_gap", 1e-7),
        ("random_seed", 0),
        ("threads", 1),
    ):
        hs.setOptionValue(opt, val)
    if start is not None:
        hs.setSolution(_start_vector(p, md, z, start, n))
    hs.run()
    status = hs.getModelStatus()
    S = highspy.HighsModelStatus
    has_sol = hs.getInfo().primal_solution_status == 2  # feasible
    if status == S.kInfeasible:
        return None, "infeasible", None
    if not has_sol:
        return None, "unknown", f"the exact solver found no placement within {time_limit:g} s; the heuristic's is used"
    vals = list(hs.getSolution().col_value)
    counts = {(a, h): int(round(sum(vals[c] for c in cols))) for (a, h), cols in z.items()}
    host_of = _name_instances(p, counts, fixed, prev)
    if host_of is None:
        return None, "unknown", "the exact solver's answer did not check out; the heuristic placement is used"
    if status == S.kOptimal:
        return host_of, "optimal", None
    gap = hs.getInfo().mip_gap
    return (
        host_of,
        "feasible",
        (
            f"the exact placement stopped at the {time_limit:g} s time limit "
            f"(optimality gap {gap:.1%}); the best placement found is used"
        ),
    )


def _start_vector(p: Problem, md: _Model, z: dict[tuple[int, int], list[int]], start: list[int], n: int):
    """A HiGHS solution for the heuristic's placement (a MIP start)."""
    import highspy

    count: dict[tuple[int, int], int] = {}
    for i, h in enumerate(start):
        key = (p.insts[i].module, h)
        count[key] = count.get(key, 0) + 1
    col = [0.0] * n
    for key, cols in z.items():
        for k, c in enumerate(cols):
            col[c] = 1.0 if k < count.get(key, 0) else 0.0
    for y, c1, c2 in md.mins:
        col[y] = min(col[c1], col[c2])
    for v, coefs in md.maxes:
        col[v] = max(col[v], sum(x * col[c] for c, x in coefs.items()))
    sol = highspy.HighsSolution()
    sol.col_value = col
    sol.value_valid = True
    return sol


def _name_instances(
    p: Problem, counts: dict[tuple[int, int], int], fixed: dict[int, int], prev: dict[int, int]
) -> list[int] | None:
    """Turn per-host counts into named instances: fixed ones first, then each
    replica back on its previous host when that host has room, then in order."""
    host_of = [-1] * len(p.insts)
    left = dict(counts)
    for a, members in enumerate(p.by_module):
        for rule in ("fixed", "prev"):
            for i in members:
                h = fixed.get(i, -1) if rule == "fixed" else prev.get(i, -1)
                if host_of[i] < 0 and h >= 0 and left.get((a, h), 0) > 0:
                    host_of[i] = h
                    left[a, h] -= 1
        for i in members:
            if host_of[i] < 0:
                h = next((h for h in p.allowed[a] if left.get((a, h), 0) > 0), -1)
                if h < 0:
                    return None
                host_of[i] = h
                left[a, h] -= 1
    used_c = [0] * len(p.hosts)
    used_m = [0] * len(p.hosts)
    for i, h in enumerate(host_of):
        used_c[h] += p.size(i)[0]
        used_m[h] += p.size(i)[1]
    if any(used_c[h] > x.cores or used_m[h] > x.memory for h, x in enumerate(p.hosts)):
        return None
    return host_of
