"""Hosts freed by consolidation (`fsc plan SITE --consolidate`): every example
and a generated site, placed as the site says (`spread` unless it says
`pack`) and then on the fewest hosts (the `pack` objective, the exact MILP
within the placer's time limit, seeded with the first placement as
consolidation is with the deployed one). Prints a Markdown table.

`python -m benchmarks.consolidation [--generated 200:40,1000:200]`
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.gen_site import generate
from fslang import api
from fslang.cli.consolidate import pack, placed

ROOT = Path(__file__).resolve().parents[1]


def row(name: str, text: str) -> str:
    b = api.build(name, text)
    if not b.ok or b.compiled is None or b.compiled.placement is None:
        return f"| {name} | does not compile | | | | |"
    before = placed(b.files)
    t0 = time.process_time()
    c = pack(name, text, b.compiled.placement)
    took = time.process_time() - t0
    if not c.ok:
        return f"| {name} | {len(set(before.values()))} | packing failed | | | |"
    after = placed(c.files)
    notes = [d.message for d in c.diagnostics if d.code == "W0701"]
    hosts = len(b.site.hosts) if b.site is not None else 0
    freed = sorted(set(before.values()) - set(after.values()))
    how = "exact" if not notes else "time limit: best found"
    moved = sum(1 for i, h in before.items() if h in freed)  # what the drains move
    return (
        f"| {name} | {hosts} | {len(set(before.values()))} | {len(set(after.values()))} | "
        f"{len(freed)} ({', '.join(freed[:6])}{', ...' if len(freed) > 6 else ''}) | {moved} | {how} | {took:.2f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generated", default="200:40,1000:200", help="generated sites, POLICIES:HOSTS,...")
    args = ap.parse_args()
    print(
        "| site | module hosts | hosts in use | on the fewest | freed | instances moved | placement | compile CPU s |\n"
        "| --- | ---: | ---: | ---: | --- | ---: | --- | ---: |"
    )
    for f in sorted((ROOT / "examples").glob("*.fs")):
        print(row(f.stem, f.read_text()), flush=True)
    for spec in args.generated.split(","):
        n, hosts = (int(x) for x in spec.split(":"))
        gen = generate(n, hosts, 2 if hosts < 100 else 4, seed=7)
        print(row(f"generated ({n} policies, {hosts} hosts)", gen), flush=True)


if __name__ == "__main__":
    main()
