"""Fault injection in a lab (`fsc lab fail HOST` / `fsc lab heal HOST`).

``fail`` makes a module host crash as a real one would, with no warning to
the controller: its agent and every instance on it (the processes in the
host's namespace, the lab's vm namespaces of that host) get SIGKILL in one
go, then every link of the host goes down (its switch ports lose carrier, as
a dead machine's do; the management link too, so nothing of it reaches the
controller). ``heal`` brings it back empty: whatever the crash left (vm
namespaces, instance devices, the agent's state) is removed, the links come
up and a fresh agent starts; it returns once the controller hears from it.
Failed hosts are recorded in ``RUN/faults.json``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from backends.platform.lab import nodes
from backends.platform.lab.lab import resolve
from backends.platform.lab.state import LabError, LabState, netns_name
from backends.platform.wait import WaitTimeout, wait_until


def _faults_path(state: LabState) -> Path:
    return state.run_dir / "faults.json"


def failed_hosts(state: LabState) -> dict[str, float]:
    """Host -> Unix time it was failed."""
    try:
        doc = json.loads(_faults_path(state).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(h): float(t) for h, t in doc.items()} if isinstance(doc, dict) else {}


def _save(state: LabState, failed: dict[str, float]) -> None:
    tmp = _faults_path(state).with_suffix(".tmp")
    tmp.write_text(json.dumps(failed, sort_keys=True), encoding="utf-8")
    os.replace(tmp, _faults_path(state))


def _host(name: str | None, host: str) -> LabState:
    state = LabState.load(resolve(name))
    if state.mode != "platform":
        raise LabError(f"lab {state.name} runs without controller and agents (--static): nothing fails over there")
    if f"agent.{host}" not in state.pids or host not in state.netns:
        hosts = sorted(label.split(".", 1)[1] for label in state.pids if label.startswith("agent."))
        raise LabError(f"lab {state.name} has no module host {host!r}; module hosts: {', '.join(hosts) or 'none'}")
    return state


def _vm_namespaces(state: LabState, host: str) -> list[str]:
    prefix = netns_name(state.name, f"vm-{host}-")
    return sorted(ns for ns in nodes.netns_list() if ns.startswith(prefix))


def _links(ns: str) -> list[str]:
    out = nodes.run(["ip", "-n", ns, "-o", "link", "show"]).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    return [n for n in names if n != "lo"]


def fail(name: str | None, host: str) -> str:
    """Crash ``host``: everything on it killed at once, its links down."""
    state = _host(name, host)
    if host in failed_hosts(state):
        raise LabError(f"host {host} has failed already; `fsc lab heal {host}` brings it back")
    spaces = [state.netns[host], *_vm_namespaces(state, host)]
    pids = {p for ns in spaces for p in nodes.netns_pids(ns)}
    agent = state.pids.get(f"agent.{host}", 0)
    if agent:
        pids.add(agent)
    pids.discard(os.getpid())
    for pid in sorted(pids):  # at once: no one gets to clean up after the others
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    ns = state.netns[host]
    nodes.ip_batch(ns, [f"link set dev {link} down" for link in _links(ns)])

    def ended() -> bool:
        for p in pids:
            nodes._reap(p)
        return not any(nodes._alive(p) for p in pids)

    try:
        wait_until(ended, 5, "the killed processes to end")
    except WaitTimeout:
        pass  # a process stuck in the kernel: the host counts as failed all the same
    failed = failed_hosts(state)
    failed[host] = time.time()
    _save(state, failed)
    return f"host {host} failed: {len(pids)} process(es) killed, its links are down"


def heal(name: str | None, host: str, timeout: float = 30.0) -> str:
    """Bring ``host`` back empty with a fresh agent; waits until the controller hears from it."""
    from backends.platform.lab import platform

    state = _host(name, host)
    failed = failed_hosts(state)
    if host not in failed:
        raise LabError(f"host {host} has not failed (`fsc lab fail {host}` first)")
    for ns in _vm_namespaces(state, host):
        nodes.delete_netns(ns)
    ns = state.netns[host]
    nodes.kill_pids(nodes.netns_pids(ns))  # nothing should be left; be sure
    for link in _links(ns):
        if link.startswith(("fs-", "fsp")):  # instance devices (taps, veths): gone with the crash
            nodes.run(["ip", "-n", ns, "link", "del", "dev", link], check=False)
    nodes.ip_batch(ns, [f"link set dev {link} up" for link in _links(ns)])
    agent_dir = state.run_dir / "agents" / host
    if agent_dir.exists():
        import shutil

        shutil.rmtree(agent_dir)
    platform.start_agent(state, host, state.controller_url_hosts[host])
    del failed[host]
    _save(state, failed)

    def heard() -> bool:
        try:
            status = platform.request(state, "GET", "/v1/status")
        except (OSError, ValueError):
            return False
        hosts = status.get("hosts", []) if isinstance(status, dict) else []
        return any(h.get("name") == host and h.get("alive") for h in hosts)

    try:
        wait_until(heard, timeout, f"the controller to hear from {host}'s agent", interval=0.05, max_interval=0.1)
    except WaitTimeout:
        raise LabError(
            f"host {host} is back, but the controller has not heard from its agent within {timeout:.0f}s"
        ) from None
    return f"host {host} is back, empty, with a fresh agent"
