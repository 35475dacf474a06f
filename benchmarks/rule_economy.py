"""Rule economy: flow entries per switch against a lower bound (issue 6, item 3).

    python -m benchmarks.rule_economy [--sizes 100,1000]

For every example and for generated sites (``benchmarks.gen_site``), counts
the compiled entries per switch and table and compares them with a bound:

* policy tables (POLICY + NONIP, per policy and ingress port): the cost of
  the policy's match written as ternary OpenFlow matches with their
  prerequisites, where a value set costs its minimal prefix cover, `and`
  multiplies, `or` adds, and `not X` costs one catch-all rule plus X's rules
  at a higher priority (an exclusion) rather than X's complement;
* SELECT: one rule per (classification entry, combo) classified on this
  switch, times the bucket patterns of the combo's hash share;
* the rest (port dispatch in CLASSIFY, the flow-hash tables, one STEER rule
  per tag, the EXIT table and the per-port defaults) is needed as compiled
  and counts at its actual size.

Also checks that no port range is spelt with more distinct port patterns
than its minimal prefix cover.  Prints one row per switch and a total per
site with the ratio actual / bound (target <= 1.25).
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from compiler.lowering import tables as T
from fslang import ast as A

Cost = dict[tuple[Any, Any], int]  # (eth class, proto class) -> entries; "*" = any
ANY: tuple[Any, Any] = ("*", "*")
L4 = {(4, 6): 1, (4, 17): 1, (6, 6): 1, (6, 17): 1}


def prefix_cover(lo: int, hi: int) -> int:
    """Entries of the minimal prefix cover of lo..hi (aligned power-of-two blocks)."""
    n = 0
    while lo <= hi:
        size = lo & -lo if lo else 1 << 16
        while lo + size - 1 > hi:
            size >>= 1
        lo += size
        n += 1
    return n


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _meet(a: Any, b: Any) -> Any:
    return b if a == "*" else a if b == "*" or a == b else None


class Bound:
    """Match ASTs -> entry costs by protocol class (see the module docstring)."""

    def __init__(self, program: A.Program) -> None:
        self.classes = {s.name.text: s.match for s in program.statements if isinstance(s, A.ClassStmt)}
        self.sets = {s.name.text: s.value for s in program.statements if isinstance(s, A.SetStmt)}

    def values(self, v: Any) -> list[Any]:
        if isinstance(v, A.SetVal):
            return [x for item in v.items for x in self.values(item)]
        if isinstance(v, (A.RefVal, A.MRef)):
            return self.values(self.sets.get(v.name.text, A.SetVal((), v.span)))
        return [v]

    def port_ranges(self, v: Any) -> list[tuple[int, int]]:
        out = []
        for x in self.values(v):
            if isinstance(x, A.IntVal):
                out.append((x.value, x.value))
            elif isinstance(x, A.RangeVal):
                out.append((x.lo, x.hi))
        return _merge(out)

    def cost(self, e: Any) -> Cost:
        if e is None:
            return {ANY: 1}
        if isinstance(e, A.MAnd):
            acc: Cost = {ANY: 1}
            for item in e.items:
                nxt: Cost = defaultdict(int)
                for (e1, p1), n1 in acc.items():
                    for (e2, p2), n2 in self.cost(item).items():
                        eth, proto = _meet(e1, e2), _meet(p1, p2)
                        if eth is not None and proto is not None:
                            nxt[eth, proto] += n1 * n2
                acc = dict(nxt)
            return acc
        if isinstance(e, A.MOr):
            out: Cost = defaultdict(int)
            for item in e.items:
                for k, n in self.cost(item).items():
                    out[k] += n
            return dict(out)
        if isinstance(e, A.MNot):  # exclusion: X's rules above one catch-all
            out = defaultdict(int, self.cost(e.expr))
            out[ANY] += 1
            return dict(out)
        if isinstance(e, A.MRef):
            return self.cost(self.classes.get(e.name.text))
        if isinstance(e, A.MProto):
            return {
                "ip": {(4, "*"): 1},
                "ip6": {(6, "*"): 1},
                "arp": {("arp", "*"): 1},
                "tcp": {(4, 6): 1, (6, 6): 1},
                "udp": {(4, 17): 1, (6, 17): 1},
                "icmp": {(4, 1): 1},
                "icmp6": {(6, 58): 1},
            }[e.proto]
        if isinstance(e, A.MProtoNum):
            return {(4, e.number): 1, (6, e.number): 1}
        dirs = 1 if getattr(e, "dir", None) else 2
        if isinstance(e, (A.MHost, A.MNet)):
            out = defaultdict(int)
            for v in self.values(e.value):
                fam = (
                    4
                    if (isinstance(v, A.AddrVal) and v.addr.version == 4)
                    or (isinstance(v, A.PrefixVal) and v.net.version == 4)
                    else 6
                )
                out[fam, "*"] += dirs
            return dict(out)
        if isinstance(e, A.MPort):
            k = dirs * sum(prefix_cover(lo, hi) for lo, hi in self.port_ranges(e.value))
            return {c: k for c in L4}
        if isinstance(e, A.MEther):
            return {ANY: dirs * len(self.values(e.value))}
        if isinstance(e, A.MDscp):
            return {(4, "*"): 1, (6, "*"): 1}
        return {ANY: 1}  # vlan

    def total(self, e: Any) -> int:
        return sum(self.cost(e).values())


def port_check(stmt: A.PolicyStmt, bound: Bound, entries: list[Any]) -> str | None:
    """A policy whose match is a conjunction with one positive `dst port`
    primitive: its rules must not spell more distinct dst-port patterns per
    protocol than the minimal prefix cover of the port set."""
    items = stmt.match.items if isinstance(stmt.match, A.MAnd) else (stmt.match,)
    ports = [i for i in items if isinstance(i, A.MPort) and i.dir == "dst"]
    if len(ports) != 1 or any(isinstance(i, (A.MOr, A.MNot, A.MRef)) for i in items):
        return None
    cover = sum(prefix_cover(lo, hi) for lo, hi in bound.port_ranges(ports[0].value))
    for field in ("tcp_dst", "udp_dst"):
        pats = {(f.value, f.mask) for e in entries for f in e.match.fields if f.field == field}
        if len(pats) > cover:
            return f"{stmt.name.text}: {len(pats)} {field} patterns, minimal prefix cover {cover}"
    return None


def measure(name: str, path: Path) -> list[tuple[Any, ...]]:
    from compiler.pipeline import compile_site
    from fslang.api import load
    from fslang.parser import parse

    front = load(path)
    if front.site is None:
        return [(name, "-", "does not check", 0, 0, 0, 0, 0, 0, [])]
    compiled = compile_site(front.site)
    if not compiled.tables:
        return [(name, "-", "does not compile: " + str(compiled.diagnostics[0].code), 0, 0, 0, 0, 0, 0, [])]
    program = parse(front.source).program
    bound = Bound(program)
    stmts = [s for s in program.statements if isinstance(s, A.PolicyStmt)]
    policies = {p.index: p for p in front.site.policies}
    plan = compiled.steering
    from compiler.lowering.lower import bucket_patterns

    rows = []
    for sw, tables in compiled.tables.items():
        by_table = Counter(e.table_id for e in tables.entries)
        pol_entries: dict[int, list[Any]] = defaultdict(list)
        defaults = 0
        for e in tables.entries:
            if e.table_id in (T.POLICY, T.NONIP):
                if e.priority == T.PRIO_DEFAULT:
                    defaults += 1
                else:
                    pol_entries[(e.cookie >> 16 & 0xFFFF) - 1].append(e)
        pol_bound = 0
        problems = []
        for idx, es in pol_entries.items():
            ports = {f.value for e in es for f in e.match.fields if f.field == "in_port"}
            stmt = stmts[idx]
            per_port = bound.total(stmt.match) * (2 if policies[idx].symmetric else 1)
            pol_bound += len(ports) * per_port
            bad = port_check(stmt, bound, es)
            if bad:
                problems.append(bad)
        # SELECT: entries classified here (ingress ports or box returns on this switch)
        classified = {
            (e.write_metadata[0] >> T.ENTRY_SHIFT & 0x7FFF) - 1
            for e in tables.entries
            if e.table_id in (T.POLICY, T.CLASSIFY) and e.write_metadata and e.write_metadata[1] & T.ENTRY_MASK
        }
        sel_bound = sum(
            max(1, len(bucket_patterns(c.buckets)))
            for en in plan.entries
            if en.id in classified
            for c, _ in en.combos
            if c.satisfiable()
        )
        actual_pol = by_table[T.POLICY] + by_table[T.NONIP] - defaults
        infra = sum(by_table.values()) - actual_pol - by_table[T.SELECT]
        total = sum(by_table.values())
        rows.append((name, sw, "", total, actual_pol, pol_bound, by_table[T.SELECT], sel_bound, infra, problems))
    return rows


def main() -> None:
    from benchmarks.compile_scale import SHAPE
    from benchmarks.gen_site import generate

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000")
    ns = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    sites = [(p.stem, p) for p in sorted((root / "examples").glob("*.fs"))]
    rows: list[tuple[Any, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in ns.sizes.split(",") if s):
            hosts, switches = SHAPE.get(n, (max(2, n // 50), 4))
            path = Path(tmp) / f"synth{n}.fs"
            path.write_text(generate(n, hosts, switches, seed=1))
            sites.append((f"synth{n}", path))
        for name, path in sites:
            rows += measure(name, path)
    print(
        f"{'site':<14} {'switch':<8} | {'entries':>7} {'bound':>7} {'ratio':>6} | {'policy':>7} {'bound':>7} "
        f"{'x':>5} | {'select':>6} {'bound':>6} {'x':>5} | {'fixed':>6}"
    )
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    problems: list[str] = []
    for name, sw, note, total, pol, pol_b, sel, sel_b, infra, probs in rows:
        if note:
            print(f"{name:<14} {sw:<8} | {note}")
            continue
        b = pol_b + sel_b + infra
        sums[name][0] += total
        sums[name][1] += b
        problems += [f"{name}/{sw}: {p}" for p in probs]
        print(
            f"{name:<14} {sw:<8} | {total:>7} {b:>7} {total / b:>6.2f} | {pol:>7} {pol_b:>7} "
            f"{pol / max(pol_b, 1):>5.2f} | {sel:>6} {sel_b:>6} {sel / max(sel_b, 1):>5.2f} | {infra:>6}"
        )
    print("per site:", ", ".join(f"{k} {a / b:.2f}x" for k, (a, b) in sums.items()))
    worst = max((a / b for a, b in sums.values()), default=0.0)
    print(f"target <= 1.25x the bound: {'met' if worst <= 1.25 else f'NOT met (worst {worst:.2f}x)'}")
    print(f"port ranges spelt with more patterns than their minimal prefix cover: {len(problems)}")
    for p in problems[:10]:
        print("  ", p)


if __name__ == "__main__":
    main()
