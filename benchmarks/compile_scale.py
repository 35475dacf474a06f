"""Compile scale: CPU time per stage and peak memory of compiling generated
sites, the growth per 10x step, a one-policy edit compiled with
``--previous``, and ``fsc check`` of mutually overlapping policies.

    python -m benchmarks.compile_scale [--sizes 1000,10000] [--overlap 2000] [--skip-own] [--edit-only]

Sites: ``benchmarks.gen_site.generate`` (Open vSwitch switches), once with
policies sharing a few service chains ("shared") and once with a chain of
its own per policy ("own").  Every figure comes from a fresh process, so
CPU time (user + system, the steadier figure on a shared machine) and peak
RSS are its own:

* stages: one process runs the stages one by one as ``fslang.api.build``
  chains them (import, parse, check, place, steer, lower, render);
* ``fsc compile``: the real command line, the whole process;
* edit: a 10,000-policy site compiled, compiled again with ``--previous``
  of that output (a full compile: the deployed output ``fsc apply`` keeps),
  one policy's match changed, compiled again with ``--previous`` of the
  second output (the process timed; FSC_DEBUG=1 says whether it was spliced
  or compiled in full), and every file compared with a full compile of the
  edited site;
* overlap: ``fsc check`` of :func:`overlap_site`.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.gen_site import generate

SHAPE = {100: (20, 2), 1000: (50, 4), 10000: (200, 4)}  # policies -> (hosts, switches)
STAGES = ("import", "parse", "check", "place", "steer", "lower", "render")


def site_text(n: int, own: bool) -> str:
    hosts, switches = SHAPE.get(n, (max(2, n // 50), 4))
    return generate(n, hosts, switches, seed=1, own_chains=own)


def overlap_site(n: int, weights: tuple[int, int, int] = (1, 1, 1)) -> str:
    """``n`` policies that all overlap one another, none inside a later one:
    each fixes a prefix of the same destination, source and destination
    port, of its own lengths; the most specific come first (a later policy
    has a smaller weighted sum of lengths, so it never lies inside an
    earlier one, and every earlier one it does not contain is a partial
    overlap).  Other positive ``weights`` give other such orders."""
    out = [
        "site overlap",
        "switch s0 dpid 0x1 ports 16 ovs",
        "host h0 at s0:1 cores 32 memory 64GiB",
        "edge internet at s0:2 default",
        "edge lan at s0:3 net 10.0.0.0/8",
        "module fw0 = firewall(allow: tcp and dst port {80, 443})",
        "module mon0 = monitor()",
    ]
    dst, src, port = 0x0A010203, 0xCB00714D, 8080
    combos = sorted(
        itertools.product(range(8, 33), range(8, 33), range(17)),
        key=lambda c: (-sum(w * x for w, x in zip(weights, c)), c),
    )[:n]
    for i, (dl, sl, pl) in enumerate(combos):
        lo = port & ~((1 << (16 - pl)) - 1)
        via = ("fw0", "mon0", "fw0 >> mon0", "pass")[i % 4]
        out.append(
            f"policy p{i} from internet match dst net {_net(dst, dl)} and src net {_net(src, sl)}"
            f" and tcp and dst port {lo}..{lo + (1 << (16 - pl)) - 1} via {via}"
        )
    return "\n".join(out) + "\n"


def _net(addr: int, length: int) -> str:
    addr &= (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
    return ".".join(str((addr >> s) & 255) for s in (24, 16, 8, 0)) + f"/{length}"


def edit_one(text: str, n: int) -> str:
    """The site with policy ``p{n//2}``'s match changed (a destination of its own)."""
    name = f"p{n // 2}"
    edited, count = re.subn(
        rf"^(policy {name} from \S+ match ).*?( via .*)$",
        r"\g<1>dst host 10.9.0.1 and tcp and dst port 4242\g<2>",
        text,
        flags=re.M,
    )
    assert count == 1, name
    return edited


# ---------------------------------------------------------------- child processes


def _stages_child(n: int, own: bool) -> None:
    """Time each stage in this process; print one JSON line."""
    import resource

    from backends.emit.output import render
    from compiler.check.checker import check
    from compiler.lowering.lower import lower
    from compiler.placement.place import place
    from compiler.steering.steer import plan
    from fslang.diagnostics import DiagnosticSink
    from fslang.parser import parse
    from fslang.source import SourceFile

    cpu = {"import": time.process_time()}
    text = site_text(n, own)
    gc.disable()  # as fslang.api.build does for the whole build

    def timed(stage, fn):
        start = time.process_time()
        out = fn()
        cpu[stage] = time.process_time() - start
        return out

    parsed = timed("parse", lambda: parse(SourceFile("synth.fs", text)))
    site = timed("check", lambda: check(parsed.program, DiagnosticSink())).site
    placed = timed("place", lambda: place(site))
    steering = timed("steer", lambda: plan(site, dict(placed.placement.weights), 0))
    tables, _ = timed("lower", lambda: lower(site, dict(placed.placement.assignments), steering))
    from compiler.pipeline import Compiled  # rendering takes the compiled platform as compile_site builds it

    c = Compiled(site, placed.placement, steering, tables, {}, [])
    timed("render", lambda: render(_with_hosts(c)))
    entries = sum(len(t.entries) for t in tables.values())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"cpu": cpu, "entries": entries, "peak": peak}))


def _with_hosts(c):
    from compiler.steering.hostplan import host_plans

    c.hosts = host_plans(c.site, dict(c.placement.assignments), c.steering)
    return c


def _run(argv: list[str], debug: bool = False) -> tuple[float, float, int, str]:
    """(CPU seconds, peak MiB, exit code, stdout) of a fresh process
    (``debug``: FSC_DEBUG=1, and standard error after standard output)."""
    env = {**os.environ, "PYTHONHASHSEED": "0", **({"FSC_DEBUG": "1"} if debug else {})}
    err = subprocess.STDOUT if debug else subprocess.DEVNULL
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, proc.returncode, out


_FSC = [sys.executable, "-m", "fslang.cli"]


def _fsc(*args: str) -> tuple[float, float, int]:
    cpu, peak, rc, _ = _run([*_FSC, *args])
    return cpu, peak, rc


def _tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- table


def _bytecode() -> None:
    """Compile fsc's modules to bytecode first, as an installed package has
    them: a session with PYTHONDONTWRITEBYTECODE=1 would otherwise compile
    every module of fsc from source in every process timed (0.3-0.4 s)."""
    import compileall

    root = Path(__file__).resolve().parents[1]
    for pkg in ("fslang", "compiler", "backends", "benchmarks"):
        compileall.compile_dir(str(root / pkg), quiet=1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--overlap", type=int, default=2000)
    ap.add_argument("--skip-own", action="store_true")
    ap.add_argument("--edit-only", action="store_true", help="only the edit row (of the largest size)")
    ap.add_argument("--edit-runs", type=int, default=5, help="times the edit is compiled (its CPU spread)")
    ap.add_argument("--child", nargs=2, metavar=("N", "KIND"), help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.child:
        _stages_child(int(ns.child[0]), ns.child[1] == "own")
        return
    _bytecode()
    sizes = [int(s) for s in ns.sizes.split(",")]
    kinds = ["shared"] + ([] if ns.skip_own else ["own"])
    lines = [
        f"{'site':<7} {'policies':>8} {'entries':>8} | "
        + " ".join(f"{s:>6}" for s in STAGES)
        + f" | {'fsc compile cpu':>15} {'MiB':>5} {'rc':>3} | growth"
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for kind in [] if ns.edit_only else kinds:
            prev = None
            for n in sizes:
                _, _, rc, out = _run([sys.executable, "-m", "benchmarks.compile_scale", "--child", str(n), kind])
                stages = json.loads(out) if rc == 0 and out.strip() else {"cpu": {}, "entries": 0}
                site = Path(tmp) / f"{kind}{n}.fs"
                site.write_text(site_text(n, kind == "own"))
                cpu, peak, rc = _fsc("compile", str(site), "-o", str(Path(tmp) / f"out-{kind}{n}"))
                growth = f"x{cpu / prev[1]:.1f} cpu per {n // prev[0]}x" if prev else ""
                lines.append(
                    f"{kind:<7} {n:>8} {stages['entries']:>8} | "
                    + " ".join(f"{stages['cpu'].get(s, float('nan')):>6.2f}" for s in STAGES)
                    + f" | {cpu:>15.2f} {peak:>5.0f} {rc:>3} | {growth}"
                )
                prev = (n, cpu)
        n = max(sizes)
        base = Path(tmp) / f"shared{n}.fs"
        if ns.edit_only:
            base.write_text(site_text(n, False))
            _fsc("compile", str(base), "-o", str(Path(tmp) / f"out-shared{n}"))
        edited = Path(tmp) / "edited" / base.name  # same file name: same site name and file names
        edited.parent.mkdir()
        edited.write_text(edit_one(base.read_text(), n))
        out_full = Path(tmp) / "edited-full"
        out_prev = Path(tmp) / "edited-previous"
        # the full compile to compare with, with --previous too (of the plain output, whose cache does not
        # allow a splice: compiled in full, and its cache, like the splice's, knows the placement is kept)
        _fsc("compile", str(edited), "-o", str(out_full), "--previous", str(Path(tmp) / f"out-shared{n}"))
        # the output the edit starts from: the site compiled with --previous of its plain compile (a full
        # compile, which finds the placement kept: the cache then allows a splice)
        kept = Path(tmp) / f"kept-shared{n}"
        first = _run([*_FSC, "compile", str(base), "-o", str(kept), "--previous", str(Path(tmp) / f"out-shared{n}")])
        argv = [*_FSC, "compile", str(edited), "-o", str(out_prev), "--previous", str(kept)]
        runs = [_run(argv, debug=True) for _ in range(ns.edit_runs)]  # the same compile again: the spread
        cpu, peak, rc, said = runs[0]
        same = rc == 0 and _tree(out_prev) == _tree(out_full)
        how = "compiled in full" if "compiling in full" in said else "spliced"
        spread = f" (runs: {', '.join(f'{r[0]:.2f}' for r in runs)})" if len(runs) > 1 else ""
        lines.append(
            f"edit one policy of shared {n}, fsc compile --previous: {cpu:.2f} s CPU{spread}, {peak:.0f} MiB, rc {rc}, "
            f"{how}; every file identical to a full compile: {same} "
            f"(the unedited site with --previous of its plain compile first: {first[0]:.2f} s, rc {first[2]})"
        )
        ov = Path(tmp) / f"overlap{ns.overlap}.fs"
        ov.write_text(overlap_site(ns.overlap))
        if not ns.edit_only:
            cpu, peak, rc = _fsc("check", str(ov))
            lines.append(
                f"fsc check of {ns.overlap} mutually overlapping policies: {cpu:.2f} s CPU, {peak:.0f} MiB, rc {rc}"
            )
    print("CPU seconds (user + system); stages in one process, fsc compile/check each a fresh process")
    print("\n".join(lines))
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
