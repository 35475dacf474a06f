"""Compile scale: wall time and peak memory of `fsc check` and `fsc compile`
on generated sites of 100, 1,000 and 10,000 policies.

    python -m benchmarks.compile_scale [--sizes 100,1000,10000]

Each run is a fresh process (so peak RSS and CPU time are its own); prints a
table.  CPU time (user + system) is the steadier figure on a shared machine."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.gen_site import generate

SHAPE = {100: (20, 2), 1000: (50, 4), 10000: (200, 4)}  # policies -> (hosts, switches)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,10000")
    ns = ap.parse_args()
    sizes = [int(s) for s in ns.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            hosts, switches = SHAPE.get(n, (max(2, n // 50), 4))
            site = Path(tmp) / f"synth{n}.fs"
            site.write_text(generate(n, hosts, switches, seed=1))
            row = [n, hosts, switches]
            for cmd in (["check", str(site)], ["compile", str(site), "-o", str(Path(tmp) / f"out{n}")]):
                code = (
                    f"import resource,sys,runpy; sys.argv=['fsc',*{cmd!r}]\n"
                    "try:\n    runpy.run_module('fslang.cli', run_name='__main__')\n"
                    "except SystemExit as e:\n    rc = e.code or 0\nelse:\n    rc = 0\n"
                    "ru = resource.getrusage(resource.RUSAGE_SELF)\n"
                    "print('PEAK', ru.ru_maxrss, ru.ru_utime + ru.ru_stime, file=sys.stderr)\n"
                    "sys.exit(rc)"
                )
                start = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, "-c", code],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONHASHSEED": "0"},
                )
                wall = time.perf_counter() - start
                line = next((l.split() for l in proc.stderr.splitlines() if l.startswith("PEAK")), ["", "0", "0"])
                row += [wall, float(line[2]), int(line[1]) / 1024, proc.returncode]
            rows.append(row)
    print(
        f"{'policies':>9} {'hosts':>6} {'sw':>3} | {'check s':>8} {'cpu s':>6} {'MiB':>6} {'rc':>3} | "
        f"{'compile s':>9} {'cpu s':>6} {'MiB':>6} {'rc':>3}"
    )
    prev = None
    for r in rows:
        print(
            f"{r[0]:>9} {r[1]:>6} {r[2]:>3} | {r[3]:>8.2f} {r[4]:>6.2f} {r[5]:>6.0f} {r[6]:>3} | "
            f"{r[7]:>9.2f} {r[8]:>6.2f} {r[9]:>6.0f} {r[10]:>3}"
            + (f"   x{r[8] / prev[8]:.1f} cpu per 10x" if prev and r[0] == prev[0] * 10 else "")
        )
        prev = r
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
