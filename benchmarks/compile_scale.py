"""Compile scale: CPU time per stage and peak memory of compiling generated
sites, the growth per 10x step, a one-policy edit compiled with
``--previous``, and ``fsc check`` of mutually overlapping policies.

    python -m benchmarks.compile_scale [--sizes 1000,10000] [--overlap 2000] [--skip-own]
        [--edit-only] [--edits match,add-end,...] [--edit-runs 3]

Sites: ``benchmarks.gen_site.generate`` (Open vSwitch switches), once with
policies sharing a few service chains ("shared") and once with a chain of
its own per policy ("own").  Every figure comes from a fresh process, so
CPU time (user + system, the steadier figure on a shared machine) and peak
RSS are its own:

* stages: one process runs the stages one by one as ``fslang.api.build``
  chains them (import, parse, check, place, steer, lower, render);
* ``fsc compile``: the real command line, the whole process;
* edits: a 10,000-policy site (:func:`edit_site`) compiled, compiled again
  with ``--previous`` of that output (a full compile: the deployed output
  ``fsc apply`` keeps), then each kind of one-policy edit (:data:`EDITS`)
  compiled with ``--previous`` of the second output (the process timed;
  FSC_DEBUG=1 says whether it was spliced or compiled in full), every file
  compared with a full compile of the edited site;
* overlap: ``fsc check`` of :func:`overlap_site`.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import re
import shutil
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


def _policy(text: str, name: str) -> re.Match[str]:
    m = re.search(rf"^policy {name} from (\S+) match (.*?) via (.*?)( symmetric)?$", text, flags=re.M)
    assert m is not None, name
    return m


def _net16(match: str) -> str:
    """The /16 of a generated policy's destination (``dst net 10.N.x.y/L`` or ``dst host 10.N.x.y``)."""
    m = re.match(r"dst (?:net|host) (\d+\.\d+)\.", match)
    return m.group(1) if m else ""


def edit_one(text: str, n: int, kind: str = "match") -> str:
    """The site with a one-policy edit of ``kind`` (:data:`EDITS`) around
    policy ``p{n//2}``."""
    k = n // 2
    m = _policy(text, f"p{k}")
    if kind == "match":
        return text[: m.start(2)] + "dst host 10.9.0.1 and tcp and dst port 4242" + text[m.end(2) :]
    if kind == "match-symmetric":  # the same destination (replies come back by the same edge), another port
        m = next(m for i in range(k, n) if (m := _policy(text, f"p{i}")).group(4))
        dst = m.group(2).split(" and ")[0]
        return text[: m.start(2)] + f"{dst} and tcp and dst port 4242" + text[m.end(2) :]
    if kind == "pipeline-existing":  # the chain of another, earlier policy
        chain = next(c for i in range(k - 1, -1, -1) if (c := _policy(text, f"p{i}").group(3)) != m.group(3))
        return text[: m.start(3)] + chain + text[m.end(3) :]
    if kind == "pipeline-stage":  # one more stage: a chain no policy had
        return text[: m.end(3)] + " >> mon1" + text[m.end(3) :]
    if kind == "drop":
        return text[: m.start(3)] + "drop" + text[m.end(3) :]
    if kind == "symmetric":  # `symmetric` added to the next plain policy without branches
        m = next(m for i in range(k, n) if not (m := _policy(text, f"p{i}")).group(4) and "{" not in m.group(3))
        return text[: m.end(3)] + " symmetric" + text[m.end(3) :]
    if kind == "symmetric-existing":
        # `symmetric` added where an earlier policy has the same symmetric chain to the same network
        # (10.N/16 is behind sN): its replies' decision list is already on that switch
        sym = {(s.group(3), _net16(s.group(2))) for i in range(k) if (s := _policy(text, f"p{i}")).group(4)}
        m = next(
            m
            for i in range(k, n)
            if not (m := _policy(text, f"p{i}")).group(4) and (m.group(3), _net16(m.group(2))) in sym
        )
        return text[: m.end(3)] + " symmetric" + text[m.end(3) :]
    new = f"policy extra from internet match dst host 10.9.0.1 and tcp and dst port 4242 via {m.group(3)}\n"
    if kind == "add-end":
        last = _policy(text, f"p{n - 1}")
        return text[: last.end() + 1] + new + text[last.end() + 1 :]
    if kind == "add-middle":
        return text[: m.start()] + new + text[m.start() :]
    if kind == "remove-end":
        last = _policy(text, f"p{n - 1}")
        return text[: last.start()] + text[last.end() + 1 :]
    assert kind == "remove-middle", kind
    return text[: m.start()] + text[m.end() + 1 :]


#: the one-policy edits the edit rows time: a match (of a plain and of a
#: symmetric policy), the pipeline (to another policy's chain, one stage
#: more, `drop`), `symmetric` added (to a chain no policy has symmetric, and
#: to one an earlier policy has), a policy added or removed (after the
#: last or in the middle)
EDITS = (
    "match",
    "match-symmetric",
    "pipeline-existing",
    "pipeline-stage",
    "drop",
    "symmetric",
    "symmetric-existing",
    "add-end",
    "add-middle",
    "remove-end",
    "remove-middle",
)


def edit_site(n: int) -> str:
    """The site the edits start from: the shared-chain site with every 100th policy symmetric."""
    lines = site_text(n, False).split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"policy p(\d+) ", line)
        if m and int(m.group(1)) % 100 == 50 and "{" not in line:  # a symmetric pipeline has no branches
            lines[i] = line + " symmetric"
    return "\n".join(lines)


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


def _edit_rows(tmp: Path, n: int, runs: int, kinds: list[str]) -> list[str]:
    """One row per kind of edit of :func:`edit_site`: the CPU of `fsc
    compile --previous` (spliced or compiled in full, as FSC_DEBUG=1 says)
    and whether every file equals a full compile's."""
    base = tmp / "edit-base" / "synth.fs"  # one file name for all: the same site name and file names
    base.parent.mkdir()
    base.write_text(edit_site(n))
    plain, kept, nocache = tmp / "edit-plain", tmp / "edit-kept", tmp / "edit-nocache"
    _fsc("compile", str(base), "-o", str(plain))
    shutil.copytree(plain, nocache)  # the same output without fsc's cache: --previous of it compiles in full
    shutil.rmtree(nocache / ".fsc-cache")
    # the output the edits start from: compiled with --previous of the plain output (a full compile, which
    # finds the placement kept and says so in its cache), as `fsc apply` workflows compile
    first = _run([*_FSC, "compile", str(base), "-o", str(kept), "--previous", str(nocache)])
    rows = [
        f"edits of shared {n} (every 100th policy symmetric; the unedited site with --previous of its plain"
        f" compile first: {first[0]:.2f} s, rc {first[2]}):"
    ]
    for kind in kinds:
        edited = tmp / f"edit-{kind}" / "synth.fs"
        edited.parent.mkdir()
        edited.write_text(edit_one(base.read_text(), n, kind))
        full, fast = tmp / f"edit-{kind}-full", tmp / f"edit-{kind}-previous"
        # the full compile to compare with: --previous of the plain output without its cache
        full_cpu, _, full_rc = _fsc("compile", str(edited), "-o", str(full), "--previous", str(nocache))
        timed = [_run([*_FSC, "compile", str(edited), "-o", str(fast), "--previous", str(kept)], debug=True)]
        timed += [
            _run([*_FSC, "compile", str(edited), "-o", str(fast), "--previous", str(kept)]) for _ in range(runs - 1)
        ]
        cpu, peak, rc, said = timed[0]
        how = "compiled in full" if "compiling in full" in said else "spliced"
        same = rc == 0 and full_rc == 0 and _tree(fast) == _tree(full)
        # the same edit with --previous of the plain output (its cache does not know the placement is kept)
        after = tmp / f"edit-{kind}-after-plain"
        p_cpu, _, p_rc, p_said = _run([*_FSC, "compile", str(edited), "-o", str(after), "--previous", str(plain)], True)
        p_how = "full" if "compiling in full" in p_said else "spliced"
        p_same = p_rc == 0 and _tree(after) == _tree(full)
        rows.append(
            f"  {kind:<18} {how:<16} {' '.join(f'{r[0]:.2f}' for r in timed)} s CPU, {peak:.0f} MiB, rc {rc}; "
            f"every file as the full compile's ({full_cpu:.2f} s): {same}; after a plain compile: "
            f"{p_how} {p_cpu:.2f} s, {p_same}"
        )
    return rows


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
    ap.add_argument("--edit-runs", type=int, default=3, help="times each edit is compiled (its CPU spread)")
    ap.add_argument("--edits", default=",".join(EDITS), help="the kinds of edit timed (comma-separated)")
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
        lines += _edit_rows(Path(tmp), n, ns.edit_runs, [k for k in ns.edits.split(",") if k])
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
