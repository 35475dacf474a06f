"""Render speed: CPU time of turning a compiled site into the `fsc compile`
output files, and of writing them.

    python -m benchmarks.render_speed [--policies 10000] [--repeat 3] [--profile]

Compiles each generated site once (the shared-chain site and, when it
compiles, the own-chain one), then times, best of ``--repeat``: the OpenFlow
files alone (``to_ofctl`` + ``to_groups`` + ``to_json`` of every switch), the
whole ``render`` (those plus plan.json, placement.json, Click and VM files)
and ``write`` to a fresh folder.  CPU time is process time (user + system).
``--profile`` prints the top of a cProfile of one ``render``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from backends.emit.openflow import render_switch
from backends.emit.output import render
from backends.emit.write import write
from benchmarks.gen_site import generate
from compiler.pipeline import Compiled
from fslang.api import build

SHAPE = (200, 4)  # hosts, switches (the compile-scale shape of 10,000 policies)


def _cpu(fn: Callable[[], object], repeat: int) -> float:
    """Best process time of ``repeat`` calls (the steadiest figure on a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def _openflow(c: Compiled) -> None:
    for sw in c.site.switches:
        render_switch(c.tables[sw.name], sw.dpid)


def _write_once(files: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp) / "out", files)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policies", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", nargs="?", const="tottime", help="profile the first render instead (pstats sort key)")
    ns = ap.parse_args()
    rows = []
    for kind, own in (("shared chains", False), ("own chains", True)):
        text = generate(ns.policies, *SHAPE, seed=1, own_chains=own)
        b = build(f"synth{ns.policies}.fs", text, render_files=False)
        if b.compiled is None:
            codes = sorted({d.code for d in b.diagnostics if d.severity == "error"})
            rows.append(f"{kind:<14} does not compile ({', '.join(codes)})")
            continue
        c = b.compiled
        entries = sum(len(t.entries) for t in c.tables.values())
        busiest = max(len(t.entries) for t in c.tables.values())
        if ns.profile:  # the first call, caches cold as in `fsc compile`; no timings then
            prof = cProfile.Profile()
            prof.runcall(render, c)
            pstats.Stats(prof).sort_stats(ns.profile).print_stats(30)
            continue
        start = time.process_time()
        files = render(c)
        first = time.process_time() - start
        size = sum(len(t) for t in files.values()) / 2**20
        of = _cpu(lambda: _openflow(c), ns.repeat)  # noqa: B023 (called before the loop moves on)
        rd = _cpu(lambda: render(c), ns.repeat)  # noqa: B023
        wr = _cpu(lambda: _write_once(files), ns.repeat)  # noqa: B023
        rows.append(
            f"{kind:<14} {entries:>8} {busiest:>8} {len(files):>6} {size:>6.1f} | "
            f"{first:>8.3f} {of:>8.3f} {rd:>8.3f} {wr:>8.3f}"
        )
    print(f"{ns.policies} policies, {SHAPE[0]} hosts, {SHAPE[1]} switches; CPU seconds, best of {ns.repeat}")
    print(
        f"{'site':<14} {'entries':>8} {'busiest':>8} {'files':>6} {'MiB':>6} | "
        f"{'render 1':>8} {'openflow':>8} {'render':>8} {'write':>8}"
    )
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
