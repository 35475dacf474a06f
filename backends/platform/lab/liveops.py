"""Live operation measured in a lab, with real packets: a host crash under
traffic, a drain under long-lived TCP connections, an agent restart under
traffic. Used by tests/test_failover_lab.py and benchmarks/failover.py.

The platform is driven only by the commands of the contract (`fsc lab
fail/heal`, `fsc drain/undrain`, `fsc status`), run as a user would from the
root namespace; what is measured comes from the packets (numbered UDP
datagrams, echoed TCP byte streams), from the switch's rules (read with
``ovs-ofctl``) and from `fsc status` (host states, events).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.platform.lab import faults, platform
from backends.platform.lab.probe import Background, Probe
from backends.platform.lab.state import LabError
from backends.platform.wait import WaitTimeout, wait_until

_ROOT = Path(__file__).resolve().parents[3]


def fsc(probe: Probe, *args: str, controller: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`fsc ARGS` from the root namespace (with the lab's controller and token when ``controller``)."""
    extra = ["--controller", probe.state.controller_url, "--token-file", probe.state.token_file] if controller else []
    return subprocess.run(
        [sys.executable, "-m", "fslang.cli", *args, *extra],
        capture_output=True,
        text=True,
        cwd=_ROOT,
        timeout=timeout,
    )


def must(cp: subprocess.CompletedProcess[str]) -> str:
    if cp.returncode != 0:
        raise LabError(f"`fsc {' '.join(cp.args[3:])}` failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
    return cp.stdout


def status(probe: Probe) -> dict[str, Any]:
    """`fsc status --format json`."""
    return json.loads(must(fsc(probe, "status", "--format", "json")))


def api_status(probe: Probe) -> dict[str, Any]:
    """The same document straight from the API (cheap enough to poll)."""
    doc = platform.request(probe.state, "GET", "/v1/status")
    assert isinstance(doc, dict)
    return doc


def host_of(st: dict[str, Any], instance: str) -> str | None:
    """The host `status` lists ``instance`` under (wanted there), or None."""
    for h in st.get("hosts", []):
        if any(i["id"] == instance and i.get("wanted", True) for i in h.get("instances", [])):
            return str(h["name"])
    return None


def rules(probe: Probe) -> set[str]:
    """Every rule of every switch, as ``ovs-ofctl --no-stats`` prints it (bridge first)."""
    out: set[str] = set()
    for br in probe.state.bridges.values():
        text = subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", f"unix:{probe.state.ovs_dir}/{br}.mgmt"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        out |= {f"{br} {line.strip()}" for line in text.splitlines() if "actions=" in line}
    return out


def steering_tag(rule: str) -> int | None:
    """The tag a steering rule sends on (``dl_vlan=T`` with cookie T), else None."""
    m = re.search(r"cookie=(0x[0-9a-f]+).*\bdl_vlan=(\d+)\b", rule)
    return int(m.group(2)) if m and int(m.group(1), 16) == int(m.group(2)) else None


def untouched_changes(before: set[str], after: set[str], moved_tags: set[int]) -> list[str]:
    """Rules that changed and are not the steering rules of a moved
    instance's tags: what a move changed for the policies it does not concern."""
    return sorted(r for r in before ^ after if steering_tag(r) not in moved_tags)


def moved_tags(files_plan: dict[str, Any], moved: set[str]) -> set[int]:
    """Tags (plan.json ``steering.tags``) of the moved instances, replies included."""
    tags = files_plan.get("steering", {}).get("tags", {})
    return {int(t) for t, what in tags.items() if what.split(" ")[0] in moved}


def plan_json(probe: Probe) -> dict[str, Any]:
    """The deployed plan.json (from the controller)."""
    doc = platform.request(probe.state, "GET", "/v1/deployed")
    assert isinstance(doc, dict)
    return json.loads(doc["files"]["plan.json"])


@dataclass
class Stream:
    """Numbered UDP datagrams from one edge node to an address, counted at the other."""

    port: int
    count: int
    rate: float
    received: set[int] = field(default_factory=set)

    @property
    def lost(self) -> int:
        return self.count - len(self.received)

    @property
    def outage(self) -> float:
        """Seconds without delivery (lost datagrams at the sending rate)."""
        return self.lost / self.rate

    def gaps(self) -> list[tuple[int, int]]:
        """Runs of lost sequence numbers (first, last)."""
        out: list[tuple[int, int]] = []
        for seq in range(self.count):
            if seq in self.received:
                continue
            if out and out[-1][1] == seq - 1:
                out[-1] = (out[-1][0], seq)
            else:
                out.append((seq, seq))
        return out


class Traffic:
    """Streams running in the background while something happens (a ``with`` block)."""

    def __init__(self, probe: Probe, src: str, dst_node: str, dst: str, streams: list[Stream]) -> None:
        self.probe, self.src, self.dst_node, self.dst, self.streams = probe, src, dst_node, dst, streams
        self._sinks: list[Any] = []
        self._senders: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self.started = 0.0

    def __enter__(self) -> Traffic:
        for s in self.streams:
            to = f"{self.dst}:{s.port}"
            cm = self.probe.udp_sink(self.dst_node, to, seconds=s.count / s.rate + 6, expect=s.count)
            self._sinks.append((cm, cm.__enter__()))
        for s in self.streams:
            t = threading.Thread(target=self._send, args=(s,), daemon=True)
            t.start()
            self._senders.append(t)
        self.started = time.monotonic()
        return self

    def _send(self, s: Stream) -> None:
        try:
            self.probe.udp_send(self.src, f"{self.dst}:{s.port}", count=s.count, rate=s.rate)
        except BaseException as err:  # reported by __exit__
            self._errors.append(err)

    def __exit__(self, *exc: object) -> None:
        for t in self._senders:
            t.join()
        for (cm, sink), s in zip(self._sinks, self.streams, strict=True):
            cm.__exit__(None, None, None)
            s.received = set(sink.result["received"])
        if self._errors:
            raise self._errors[0]


@dataclass
class FailoverRun:
    """What a crash under traffic did (all times in seconds from the crash)."""

    host: str
    moved: dict[str, str]
    detect: float | None  # until `status` says the host is down
    recover: float | None  # until `status` lists the moved instances ready on their new hosts
    affected: Stream
    untouched: Stream
    rules_changed: int
    untouched_rules: list[str]
    lost_instances: list[str]  # instances `status` showed as `lost` under the failed host meanwhile

    def summary(self) -> str:
        return (
            f"crash of {self.host}: down after {_s(self.detect)}, moved {self.moved} ready after {_s(self.recover)}; "
            f"affected policy lost {self.affected.lost} of {self.affected.count} datagrams "
            f"({self.affected.outage:.2f}s at {self.affected.rate:.0f}/s, gaps {self.affected.gaps()[:4]}); "
            f"untouched policy lost {self.untouched.lost} of {self.untouched.count}; "
            f"{self.rules_changed} rule(s) changed, {len(self.untouched_rules)} of them not a moved instance's steering"
        )


def _s(x: float | None) -> str:
    return "never" if x is None else f"{x:.2f}s"


def watch_failover(probe: Probe, host: str, instances: list[str], t0: float, until: float) -> dict[str, Any]:
    """Poll the status until ``instances`` are ready on other hosts: when the
    host was seen down, when they were ready (seconds from ``t0``, Unix time),
    which were shown `lost`."""
    seen: dict[str, Any] = {"detect": None, "recover": None, "lost": set(), "moved": {}}

    def recovered() -> bool:
        try:
            st = api_status(probe)
        except (OSError, ValueError):
            return False
        now = time.time() - t0
        hosts = {h["name"]: h for h in st.get("hosts", [])}
        if seen["detect"] is None and hosts.get(host, {}).get("state") == "down":
            seen["detect"] = now
        for i in hosts.get(host, {}).get("instances", []):
            if i["state"] == "lost":
                seen["lost"].add(i["id"])
        where = {i: host_of(st, i) for i in instances}
        ready = all(
            h not in (None, host) and any(x["id"] == i and x["state"] == "ready" for x in hosts[h]["instances"])  # type: ignore[index]
            for i, h in where.items()
        )
        if ready:
            seen["recover"], seen["moved"] = now, {i: str(h) for i, h in where.items()}
        return bool(ready)

    try:  # polled at a steady 50 ms: the times it records are that fine
        wait_until(recovered, max(0.0, until - time.time()), "the failover", interval=0.05, max_interval=0.05)
    except WaitTimeout:
        pass  # not recovered in time: `recover` stays None
    return seen


def crash_under_traffic(
    probe: Probe,
    dst: str,
    affected_port: int,
    untouched_port: int,
    instance: str,
    rate: float = 200.0,
    seconds: float = 12.0,
    before: float = 2.0,
) -> FailoverRun:
    """`fsc lab fail` the host that runs ``instance`` while two UDP streams run
    from ``wan`` to ``dst`` on ``lan``: one through ``instance`` (affected),
    one through nothing on that host (untouched)."""
    st = status(probe)
    host = host_of(st, instance)
    if host is None:
        raise LabError(f"no host runs {instance}: {[(h['name'], h['instances']) for h in st['hosts']]}")
    on_host = [  # module instances (a Click configuration `click.gN` is not one)
        i["id"] for h in st["hosts"] if h["name"] == host for i in h["instances"] if not i["id"].startswith("click.")
    ]
    rules_before = rules(probe)
    count = int(rate * seconds)
    affected, untouched = Stream(affected_port, count, rate), Stream(untouched_port, count, rate)
    with Traffic(probe, "wan", "lan", dst, [affected, untouched]):
        time.sleep(before)  # traffic flows before the crash
        must(fsc(probe, "lab", "fail", host, "--name", probe.state.name, controller=False))
        t0 = faults.failed_hosts(probe.state)[host]  # when the processes were killed (Unix time)
        seen = watch_failover(probe, host, on_host, t0, t0 + 30)
    tags = moved_tags(plan_json(probe), set(seen["moved"]))
    after = rules(probe)
    return FailoverRun(
        host=host,
        moved=seen["moved"],
        detect=seen["detect"],
        recover=seen["recover"],
        affected=affected,
        untouched=untouched,
        rules_changed=len(rules_before ^ after),
        untouched_rules=untouched_changes(rules_before, after, tags),
        lost_instances=sorted(seen["lost"]),
    )


@dataclass
class TcpRun:
    """Long-lived TCP connections while something happened."""

    connections: list[dict[str, Any]]
    output: str = ""

    @property
    def resets(self) -> int:
        return sum(1 for c in self.connections if "Reset" in c.get("error", ""))

    @property
    def broken(self) -> list[dict[str, Any]]:
        return [c for c in self.connections if not c.get("ok")]

    @property
    def lost_bytes(self) -> int:
        return sum(c.get("sent", 0) - c.get("received", 0) for c in self.connections)

    @property
    def bytes(self) -> int:
        return sum(c.get("received", 0) for c in self.connections)


class LongTcp:
    """``longtcp`` connections from ``src`` to an echo server on ``dst_node`` (a ``with`` block)."""

    def __init__(
        self, probe: Probe, src: str, dst_node: str, to: str, connections: int = 8, seconds: float = 10.0
    ) -> None:
        self.probe, self.src, self.dst_node, self.to = probe, src, dst_node, to
        self.connections, self.seconds = connections, seconds
        self.result: TcpRun | None = None

    def __enter__(self) -> LongTcp:
        self._dir = tempfile.TemporaryDirectory()
        ready = Path(self._dir.name) / "ready"
        self._echo = self.probe.traffic_bg(
            self.dst_node, "tcp-echo", "--bind", self.to, "--seconds", "600", "--ready", str(ready)
        )
        try:
            wait_until(lambda: ready.exists() or self._echo.proc.poll() is not None, 20, "the echo server")
        finally:
            if not ready.exists():
                self._stop_echo()
        self._proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.probe.ns(self.src),
                sys.executable,
                "-m",
                "backends.platform.lab.longtcp",
                "--to",
                self.to,
                "--connections",
                str(self.connections),
                "--seconds",
                str(self.seconds),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=_ROOT,
        )
        return self

    def established(self) -> int:
        """TCP connections the echo server's namespace has established on its port."""
        port = self.to.rpartition(":")[2]
        out = self.probe.run(self.dst_node, "ss", "-Htn", "state", "established", f"( sport = :{port} )").stdout
        return len(out.splitlines())

    def wait(self) -> TcpRun:
        out, err = self._proc.communicate(timeout=self.seconds + 60)
        if self._proc.returncode != 0:
            raise LabError(f"longtcp failed ({self._proc.returncode}): {err.strip()}")
        self.result = TcpRun(json.loads(out.strip().splitlines()[-1])["connections"], out)
        return self.result

    def _stop_echo(self) -> None:
        self._echo.proc.kill()
        self._echo.proc.communicate()
        self._dir.cleanup()

    def __exit__(self, *exc: object) -> None:
        try:
            if self.result is None:
                self.wait()
        finally:
            self._stop_echo()


def restart_agent(probe: Probe, host: str) -> int:
    """SIGKILL ``host``'s agent (only the agent: its instances keep running)
    and start a fresh one, as a crashed agent that a supervisor restarts;
    returns the killed pid. The lab record is read again first (`fsc lab
    heal` may have started the agent that runs now)."""
    import os
    import signal

    from backends.platform.lab import nodes
    from backends.platform.lab.state import LabState

    probe.state = LabState.load(probe.state.name)
    agent = probe.state.pids[f"agent.{host}"]
    os.kill(agent, signal.SIGKILL)
    wait_until(lambda: nodes.gone(agent), 10, "the killed agent to end")
    platform.start_agent(probe.state, host, probe.state.controller_url_hosts[host])
    return agent


def processes(probe: Probe, node: str) -> dict[int, str]:
    """Pid -> command line of every process in ``node``'s namespace."""
    from backends.platform.lab import nodes

    out = {}
    for pid in nodes.netns_pids(probe.state.netns[node]):
        try:
            out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
        except OSError:
            continue
    return out


@dataclass
class HeldTcp:
    """``tcp-hold`` connections running in a node: echoing until ``go`` exists;
    ``ready`` appears after the first round (every connection established)."""

    bg: Background
    go: Path
    ready: Path

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(lambda: self.ready.exists() or self.bg.proc.poll() is not None, timeout, "the long connections")
        if not self.ready.exists():
            raise LabError(f"tcp-hold ended before its connections were up: {self.bg.wait()}")


def hold_tcp(
    probe: Probe,
    src: str,
    to: str,
    d: Path,
    name: str,
    count: int,
    sport: int,
    stride: int = 1,
    go_now: bool = False,
    seconds: float = 80,
    interval: float = 0.2,
) -> HeldTcp:
    """``count`` long TCP connections from node ``src`` to ``to`` (source ports
    ``sport``, ``sport + stride``, ...), each echoing a few bytes every
    ``interval`` (compared byte for byte) until the file ``d/NAME.go`` exists
    (``go_now``: one exchange each, then close) or ``seconds`` pass."""
    go, ready = d / f"{name}.go", d / f"{name}.ready"
    if go_now:
        go.touch()
    bg = probe.traffic_bg(
        src, "tcp-hold", "--to", to, "--count", str(count), "--sport", str(sport), "--go", str(go),
        "--ready", str(ready), "--src", probe.state.addresses[src], "--interval", str(interval),
        "--seconds", str(seconds), "--stride", str(stride),
    )  # fmt: skip
    return HeldTcp(bg, go, ready)


def new_connections_packets(
    probe: Probe, instances: list[str], src: str, to: str, d: Path, count: int, sport: int, stride: int = 1
) -> dict[str, int]:
    """Open ``count`` new TCP connections from ``src`` to ``to`` (one exchange
    each, source ports as :func:`hold_tcp`) and return the packets each of
    ``instances`` counted for them: read once every connection is counted (six
    packets each at least) and the counters no longer move, so a replica's
    share can be held against :func:`hash_spread`."""

    def counts() -> dict[str, int]:
        return {i: probe.packets(i)[0] for i in instances}

    base = counts()
    res = hold_tcp(probe, src, to, d, "new", count, sport, stride, go_now=True).bg.wait(timeout=60)
    if res["ok"] != count:
        raise LabError(f"{res['ok']} of {count} new connections echoed: {res}")
    last: list[dict[str, int]] = [{}]

    def settled() -> bool:  # every connection counted, and the counters no longer move
        now, prev = counts(), last[0]
        last[0] = now
        return now == prev and sum(now.values()) - sum(base.values()) >= count * 6

    wait_until(settled, 15, "the instance counters", interval=0.5)
    return {i: v - base[i] for i, v in last[0].items()}


def hash_spread(src: str, to: str, sports: list[int], weights: list[int], proto: int = 6) -> list[int]:
    """How many of the connections from ``src`` (an IPv4 address) with source
    ports ``sports`` to ``to`` (``ADDR:PORT``) the compiled flow hash gives
    each replica of a stage with ``weights`` (what new connections must follow)."""
    from compiler.steering.flowhash import bucket, replica_index

    def ip(a: str) -> int:
        return int.from_bytes(bytes(int(x) for x in a.split(".")), "big")

    dst, _, port = to.rpartition(":")
    l4 = {6: "tcp", 17: "udp"}[proto]
    out = [0] * len(weights)
    for sp in sports:
        pkt = {"eth_type": 0x0800, "ipv4_src": ip(src), "ipv4_dst": ip(dst), "ip_proto": proto}
        pkt |= {f"{l4}_src": sp, f"{l4}_dst": int(port)}
        out[replica_index(bucket(pkt), weights)] += 1
    return out
