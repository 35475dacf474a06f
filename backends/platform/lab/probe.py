"""Driving traffic through a running lab from Python (tests, demos).

lab = Probe("mylab")
assert lab.ping("wan", "10.40.0.20")
with lab.udp_sink("lan", "10.40.0.20:5000", seconds=3) as sink:
    lab.udp_send("wan", "10.40.0.20:5000", count=100, rate=200)
assert len(sink.result["received"]) == 100
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backends.platform.lab.state import LabError, LabState
from backends.platform.wait import WaitTimeout, wait_until

_ROOT = Path(__file__).resolve().parents[3]


class Background:
    """A traffic command running in a node; ``result`` is its JSON once it ended."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.result: dict[str, Any] = {}

    def wait(self, timeout: float = 60) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise LabError(f"traffic command failed ({self.proc.returncode}): {err.strip()}")
        self.result = json.loads(out.strip().splitlines()[-1])
        return self.result


class Probe:
    def __init__(self, lab: str) -> None:
        self.state = LabState.load(lab)

    def ns(self, node: str) -> str:
        return self.state.netns[node]

    def run(self, node: str, *cmd: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess[str]:
        cp = subprocess.run(
            ["ip", "netns", "exec", self.ns(node), *cmd], capture_output=True, text=True, timeout=timeout, cwd=_ROOT
        )
        if check and cp.returncode != 0:
            raise LabError(f"{' '.join(cmd)} in {node} failed: {cp.stderr.strip() or cp.stdout.strip()}")
        return cp

    def ping(self, node: str, dst: str, count: int = 1, src: str | None = None, wait: float = 1.0) -> bool:
        cmd = ["ping", "-n", "-q", "-c", str(count), "-W", str(wait), "-i", "0.2"]
        if src:
            cmd += ["-I", src]
        return self.run(node, *cmd, dst).returncode == 0

    def traffic(self, node: str, *args: str) -> dict[str, Any]:
        cp = self.run(node, sys.executable, "-m", "backends.platform.lab.traffic", *args, check=True)
        return json.loads(cp.stdout.strip().splitlines()[-1])

    def traffic_bg(self, node: str, *args: str) -> Background:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(node), sys.executable, "-m", "backends.platform.lab.traffic", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=_ROOT,
        )
        return Background(proc)

    @contextmanager
    def _server(self, node: str, kind: str, bind: str, seconds: float, *extra: str) -> Iterator[Background]:
        with tempfile.TemporaryDirectory() as d:
            ready = Path(d) / "ready"
            bg = self.traffic_bg(node, kind, "--bind", bind, "--seconds", str(seconds), "--ready", str(ready), *extra)
            try:  # the server writes the file once its socket is bound
                wait_until(lambda: ready.exists() or bg.proc.poll() is not None, 20, f"{kind} in {node}")
            except WaitTimeout:
                pass
            if not ready.exists():
                bg.proc.kill()
                raise LabError(f"{kind} in {node} did not start: {bg.proc.communicate()[1]}")
            try:
                yield bg
            finally:
                bg.wait(timeout=seconds + 30)

    def udp_sink(self, node: str, bind: str, seconds: float = 3, expect: int = 0) -> Any:
        """Receives numbered datagrams for ``seconds`` (or until ``expect`` distinct ones came)."""
        return self._server(node, "udp-sink", bind, seconds, "--expect", str(expect))

    def raw_sink(self, node: str, proto: int, seconds: float = 3, expect: int = 0) -> Any:
        """Captures IPv4 packets of protocol ``proto`` delivered to ``node``."""
        return self._server(node, "raw-sink", "", seconds, "--proto", str(proto), "--expect", str(expect))

    def tcp_echo(self, node: str, bind: str, seconds: float = 3) -> Any:
        return self._server(node, "tcp-echo", bind, seconds)

    def udp_send(
        self, node: str, to: str, count: int = 100, rate: float = 200, src: str | None = None, sport: int = 0
    ) -> dict[str, Any]:
        args = ["udp-send", "--to", to, "--count", str(count), "--rate", str(rate), "--sport", str(sport)]
        if src:
            args += ["--src", src]
        return self.traffic(node, *args)

    def tcp_talk(self, node: str, to: str, nbytes: int = 20000, src: str | None = None) -> dict[str, Any]:
        args = ["tcp-talk", "--to", to, "--bytes", str(nbytes)]
        if src:
            args += ["--src", src]
        return self.traffic(node, *args)

    def box_packets(self, box: str) -> int:
        """Frames the box sent back (its tc mirred filter's counter)."""
        out = self.run(box, "tc", "-s", "filter", "show", "dev", "in0", "ingress", check=True).stdout
        for line in out.splitlines():
            if line.strip().startswith("Sent "):
                return int(line.split()[3])
        return 0

    def flow_packets(self, switch: str, cookie: str | None = None) -> dict[str, int]:
        """n_packets per flow line of a bridge (optionally only a cookie/mask)."""
        br = self.state.bridges[switch]
        args = ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", f"unix:{self.state.ovs_dir}/{br}.mgmt"]
        if cookie:
            args.append(f"cookie={cookie}")
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        res: dict[str, int] = {}
        for line in out.splitlines():
            if "n_packets=" not in line:
                continue
            n = int(line.split("n_packets=")[1].split(",")[0])
            key = ",".join(
                p
                for p in line.strip().split(", ")
                if not p.startswith(("duration=", "n_packets=", "n_bytes=", "idle_age="))
            )
            res[key] = n
        return res

    # -- Click runtime counters ------------------------------------------
    def _stats_files(self, host: str) -> list[Path]:
        run = self.state.run_dir
        files = [run / "stats" / f"click.{host}.json"]
        files += sorted((run / "agents" / host).glob("**/stats.json"))
        return [f for f in files if f.exists()]

    def click_stats(self, host: str, fresh: bool = True) -> list[dict[str, Any]]:
        """The stats documents of every Click runtime of ``host`` (one per
        generation during an update); ``fresh``: ask each runtime to write
        its counters now (SIGUSR1) and wait for the new file (a runtime that
        ends meanwhile wrote its last counters on the way out)."""
        docs = []
        for f in self._stats_files(host):
            doc = _read_json(f)
            if doc is not None:
                docs.append(_fresh(f, doc) if fresh else doc)
        return docs

    def instance_packets(self, host: str) -> dict[str, tuple[int, int]]:
        """(packets in, packets out) per module instance of ``host``, summed
        over its runtimes. Instance ``fw`` is compound ``i_fw``, ``rep#2`` is ``i_rep_2``."""
        out: dict[str, tuple[int, int]] = {}
        for doc in self.click_stats(host):
            for name, c in (doc.get("compounds") or {}).items():
                if not name.startswith("i_"):
                    continue
                i, o = out.get(name, (0, 0))
                out[name] = (i + int(c.get("packets_in", 0)), o + int(c.get("packets_out", 0)))
        return out

    def packets(self, instance: str) -> tuple[int, int]:
        """(in, out) of one module instance (``fw``, ``rep#2``) wherever it runs."""
        key = "i_" + instance.replace("#", "_")
        total = (0, 0)
        for host in self._hosts():
            i, o = self.instance_packets(host).get(key, (0, 0))
            total = (total[0] + i, total[1] + o)
        return total

    def _hosts(self) -> list[str]:
        run = self.state.run_dir
        hosts = {p.name[len("click.") : -len(".json")] for p in (run / "stats").glob("click.*.json")}
        hosts |= {p.name for p in (run / "agents").glob("*") if p.is_dir()}
        return sorted(hosts)


def _fresh(f: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """Ask the runtime that wrote ``doc`` to ``f`` for its counters now
    (SIGUSR1) and return the document it writes; ``doc`` itself when that
    runtime is gone (it wrote its last counters on the way out)."""
    import os
    import signal

    pid, t0 = int(doc.get("pid") or 0), doc.get("time", 0)
    if not pid or not _is_runtime(pid, f):
        return doc
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        return doc

    def newer() -> dict[str, Any] | None:
        new = _read_json(f)
        return new if new is not None and (new.get("time", 0) > t0 or not _is_runtime(pid, f)) else None

    try:
        return wait_until(newer, 15, f"the Click runtime (pid {pid}) to write {f}")
    except WaitTimeout as e:
        raise LabError(f"{e}: its counters would be stale") from None


def _read_json(path: Path) -> dict[str, Any] | None:
    """The document in ``path``; None while it is missing or half-written."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _is_runtime(pid: int, stats: Path) -> bool:
    """The pid is still the Click runtime that writes ``stats`` (never signal a reused pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"backends.click.runtime" in argv and str(stats).encode() in argv
