"""Grammar-aware fuzzing of `fsc check` / `fsc compile`: one command, a summary table.

    .venv/bin/python -m benchmarks.fuzz_sites [-n 100000] [--seed 1] [--start 0]
        [--minutes M] [-j 1] [--cli-every 500] [--out build/fuzz]

Inputs come from ``benchmarks.fuzz_gen`` (sites written with the language in
mind, random derivations of the Lark grammar, mutated examples, junk) and,
with ``--ast N``, from the Hypothesis AST strategies of
``tests/fsl_strategies.py`` printed by ``fslang.printer``.  Input ``i`` of a
run with seed ``s`` is the same on every machine: ``--start i -n 1``
replays it.

Each input goes through the parser alone and through ``fslang.api.build``
(check, place, compile, render: what both `fsc check` and `fsc compile` run).
Counted as findings:

* a traceback: any exception out of the parser or ``api.build``;
* a bad verdict: a rejected site without an error diagnostic, a diagnostic
  whose code is not in ``fslang/codes.py`` or whose span lies outside the
  text, or an accepted site that rendered no files;
* a timeout: one input over ``--timeout`` seconds;
* a disagreement (every ``--cli-every``-th input, and every finding): `fsc
  check` and `fsc compile` run as processes on the file; their exit codes
  must be equal (0 or 1), neither may print a traceback or "internal error",
  and a failed compile must leave its output folder absent.

Every finding is saved under ``--out`` (the input and what happened) and the
command exits 1 if there was any.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.fuzz_gen import generate
from fslang import api
from fslang.codes import CODES
from fslang.parser import parse
from fslang.source import SourceFile

ROOT = Path(__file__).resolve().parents[1]
CODE = re.compile(r"[EW]\d{4}")
KNOWN = {c.code for c in CODES}


class Timeout(Exception):
    pass


@dataclass
class Outcome:
    index: int
    kind: str
    seconds: float
    verdict: str  # ok | rejected | traceback | bad | timeout
    detail: str = ""
    codes: tuple[str, ...] = ()
    cli: str = ""  # "" (not run) | same | differs: ...


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, o: Outcome) -> None:
        self.outcomes.append(o)


def _alarm(signum: int, frame: object) -> None:
    raise Timeout()


def _text(data: str | bytes) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def check_one(index: int, kind: str, data: str | bytes, timeout: float) -> Outcome:
    """Parse, then build; a finding is anything but a clean verdict."""
    t0 = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        parse(SourceFile("fuzz.fs", _text(data).replace("\x00", " ")))
        b = api.build("fuzz.fs", data)
    except Timeout:
        return Outcome(index, kind, time.perf_counter() - t0, "timeout", f"over {timeout:g} s")
    except BaseException as err:  # noqa: BLE001 - every escape is what we count
        if isinstance(err, KeyboardInterrupt):
            raise
        tb = traceback.format_exc()
        return Outcome(index, kind, time.perf_counter() - t0, "traceback", _where(err) + "\n" + tb)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    seconds = time.perf_counter() - t0
    codes = tuple(sorted({d.code for d in b.diagnostics}))
    n = len(b.source.text)
    problems = [f"unknown code {c}" for c in codes if not CODE.fullmatch(c) or c not in KNOWN]
    problems += [
        f"{d.code} span {d.span} outside the text ({n})"
        for d in b.diagnostics
        if not 0 <= d.span.start <= d.span.end <= n
    ]
    if not b.ok and not any(d.severity == "error" for d in b.diagnostics):
        problems.append("rejected without an error diagnostic")
    if b.ok and not b.files:
        problems.append("accepted but rendered no file")
    verdict = "bad" if problems else "ok" if b.ok else "rejected"
    return Outcome(index, kind, seconds, verdict, "; ".join(problems), codes)


def _where(err: BaseException) -> str:
    """``Type: message @ file:line`` of the innermost project frame (the key findings are grouped by)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if str(ROOT) in f.filename]
    last = frames[-1] if frames else None
    at = f"{Path(last.filename).relative_to(ROOT)}:{last.lineno}" if last else "?"
    return f"{type(err).__name__}: {str(err)[:160]} @ {at}"


def cli_agrees(data: str | bytes, timeout: float) -> str:
    """Run `fsc check` and `fsc compile` on the input as a user would: "same" or what differs."""
    with tempfile.TemporaryDirectory(prefix="fsc-fuzz-") as tmp:
        site = Path(tmp) / "site.fs"
        site.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
        out = Path(tmp) / "out"
        env = dict(os.environ, PYTHONHASHSEED="0")
        runs = {}
        for cmd in (["check", str(site)], ["compile", str(site), "-o", str(out)]):
            try:
                p = subprocess.run(
                    [sys.executable, "-m", "fslang.cli", *cmd],
                    capture_output=True,
                    text=True,
                    errors="replace",
                    timeout=timeout,
                    cwd=ROOT,
                    env=env,
                )
            except subprocess.TimeoutExpired:
                return f"differs: `fsc {cmd[0]}` over {timeout:g} s"
            runs[cmd[0]] = p
        check, comp = runs["check"], runs["compile"]
        bad = []
        for name, p in runs.items():
            if p.returncode not in (0, 1) or "Traceback" in p.stderr or "internal error" in p.stderr:
                bad.append(f"`fsc {name}` exit {p.returncode}: {p.stderr.strip()[-300:]}")
        if check.returncode != comp.returncode:
            bad.append(f"`fsc check` exit {check.returncode}, `fsc compile` exit {comp.returncode}")
        if comp.returncode != 0 and out.exists():
            bad.append("a failed compile wrote its output folder")
        return "same" if not bad else "differs: " + "; ".join(bad)


def _work(args: tuple[int, int, float, int, float, bool]) -> Outcome:
    seed, index, timeout, cli_every, cli_timeout, deep = args
    kind, data = generate(seed, index, deep)
    o = check_one(index, kind, data, timeout)
    if (cli_every and index % cli_every == 0) or o.verdict in ("traceback", "bad"):
        o.cli = cli_agrees(data, cli_timeout)
    return o


def ast_inputs(n: int, seed: int) -> list[str]:
    """``n`` programs drawn from the Hypothesis AST strategies (tests/fsl_strategies.py), printed."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    sys.path.insert(0, str(ROOT))
    from fslang import printer
    from tests.fsl_strategies import programs

    out: list[str] = []

    @hseed(seed)
    @settings(
        max_examples=n, database=None, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)
    )
    @given(programs)
    def draw(program: object) -> None:
        out.append(printer.program(program))

    draw()
    return out


def save(out_dir: Path, seed: int, o: Outcome, data: str | bytes) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    h = hashlib.sha256(raw).hexdigest()[:10]
    (out_dir / f"{o.verdict}-{h}.fs").write_bytes(raw)
    (out_dir / f"{o.verdict}-{h}.txt").write_text(
        f"seed {seed} index {o.index} generator {o.kind} ({o.seconds:.2f} s)\n{o.detail}\n{o.cli}\n", encoding="utf-8"
    )


def report(s: Summary, wall: float, started: int, seed: int, runs: list[str] | None = None) -> str:
    outs = s.outcomes
    if runs:
        head = f"fuzz_sites: {len(outs)} inputs from {len(runs)} runs ({', '.join(runs)})"
    else:
        head = f"fuzz_sites: seed {seed}, inputs {started}..{started + len(outs) - 1}, wall {wall:.0f} s"
    lines = [head, f"CPU time in check_one: {sum(o.seconds for o in outs):.0f} s", ""]
    kinds = sorted({o.kind for o in outs})
    verdicts = ["ok", "rejected", "traceback", "bad", "timeout"]
    lines.append(f"{'generator':<10}" + "".join(f"{v:>11}" for v in ["inputs", *verdicts]) + f"{'mean ms':>10}")
    for k in [*kinds, "all"]:
        sel = [o for o in outs if k in ("all", o.kind)]
        c = Counter(o.verdict for o in sel)
        mean = 1000 * sum(o.seconds for o in sel) / max(len(sel), 1)
        lines.append(f"{k:<10}{len(sel):>11}" + "".join(f"{c[v]:>11}" for v in verdicts) + f"{mean:>10.1f}")
    times = sorted(o.seconds for o in outs)

    def pct(p: float) -> float:
        return 1000 * times[min(len(times) - 1, int(p * len(times)))] if times else 0.0

    lines += [
        "",
        f"time per input: p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {1000 * times[-1] if times else 0:.0f} ms",
    ]
    sampled = [o for o in outs if o.cli]
    differ = [o for o in sampled if o.cli != "same"]
    lines.append(f"`fsc check` vs `fsc compile` (processes): {len(sampled)} inputs, {len(differ)} disagreements")
    deepest = Counter(c for o in outs for c in o.codes)
    lines.append(f"distinct diagnostic codes seen: {len(deepest)}; most frequent: "
                 + ", ".join(f"{c} {n}" for c, n in deepest.most_common(8)))  # fmt: skip
    findings = [o for o in outs if o.verdict in ("traceback", "bad", "timeout") or o in differ]

    def what(o: Outcome) -> tuple[str, str]:
        if o.verdict in ("ok", "rejected"):
            return "disagreement", o.cli[:160]
        return o.verdict, o.detail.splitlines()[0] if o.detail else ""

    groups = Counter(what(o) for o in findings)
    lines += ["", f"findings: {len(findings)} ({len(groups)} distinct)"]
    for (v, what), n in groups.most_common():
        lines.append(f"  {n:>5} x {v}: {what}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fuzz_sites", description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000, help="inputs (default 100,000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0, help="first input index (resume or replay)")
    ap.add_argument("--minutes", type=float, default=0, help="stop after this long (0: no limit)")
    ap.add_argument("-j", type=int, default=1, help="worker processes")
    ap.add_argument("--ast", type=int, default=0, help="also this many Hypothesis AST programs")
    ap.add_argument("--cli-every", type=int, default=500, help="run the CLI on every N-th input (0: never)")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per input before it is a finding")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "fuzz", help="where findings are saved")
    ap.add_argument("--deep", action="store_true", help="only sites with deeply nested matches and pipelines")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--summarize", type=Path, nargs="+", help="only print the summary of earlier runs' outcome logs")
    a = ap.parse_args(argv)
    if a.summarize:
        outs = [Outcome(**json.loads(line)) for f in a.summarize for line in f.read_text().splitlines() if line]
        sys.stdout.write(report(Summary(outs), 0.0, 0, a.seed, runs=[str(f) for f in a.summarize]))
        return 0
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))  # as `fsc` itself (fslang.cli.main)
    if a.out.exists():
        shutil.rmtree(a.out)
    summary = Summary()
    t0 = time.monotonic()
    deadline = t0 + 60 * a.minutes if a.minutes else None
    cli_timeout = max(120.0, 2 * a.timeout)
    tasks = ((a.seed, i, a.timeout, a.cli_every, cli_timeout, a.deep) for i in range(a.start, a.start + a.n))
    pool = mp.get_context("fork").Pool(a.j) if a.j > 1 else None
    results = pool.imap(_work, tasks, chunksize=8) if pool else map(_work, tasks)
    a.out.mkdir(parents=True, exist_ok=True)
    log = (a.out / "outcomes.jsonl").open("w", encoding="utf-8")  # one line per input: --summarize reads them
    try:
        for o in results:
            summary.add(o)
            log.write(json.dumps(dataclasses.asdict(o) | {"detail": o.detail.splitlines()[0] if o.detail else ""}))
            log.write("\n")
            if o.verdict in ("traceback", "bad", "timeout") or o.cli.startswith("differs"):
                save(a.out, a.seed, o, generate(a.seed, o.index, a.deep)[1])
                if not a.quiet:
                    what = o.detail.splitlines()[0] if o.detail else o.cli
                    print(f"finding at input {o.index} ({o.kind}): {o.verdict} {what}", file=sys.stderr)
            if not a.quiet and len(summary.outcomes) % 1000 == 0:
                print(f"... {len(summary.outcomes)} inputs, {time.monotonic() - t0:.0f} s", file=sys.stderr)
            if deadline and time.monotonic() > deadline:
                break
        if a.ast:
            for k, text in enumerate(ast_inputs(a.ast, a.seed)):
                o = check_one(-1 - k, "ast", text, a.timeout)
                summary.add(o)
                log.write(json.dumps(dataclasses.asdict(o) | {"detail": o.detail.splitlines()[0] if o.detail else ""}))
                log.write("\n")
                if o.verdict in ("traceback", "bad", "timeout"):
                    save(a.out, a.seed, o, text)
    finally:
        log.close()
        if pool:
            pool.terminate()
    text = report(summary, time.monotonic() - t0, a.start, a.seed)
    sys.stdout.write(text)
    bad = [o for o in summary.outcomes if o.verdict in ("traceback", "bad", "timeout") or o.cli.startswith("differs")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
