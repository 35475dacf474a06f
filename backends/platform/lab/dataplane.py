"""The lab's data plane without a controller (``fsc lab up --static``).

The compiled rules go straight into the bridges (groups first, then flows, one
``ovs-ofctl --bundle`` each), and every host with a Click configuration runs it
in the project's userlevel Click runtime (``python -m backends.click.runtime``)
inside the host's namespace. ``process`` and ``vm`` instances are left to the
agent (platform mode): a static lab of a site that has them says so.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from backends.platform.lab import nodes
from backends.platform.lab.ovs import PrivateOvs
from backends.platform.lab.state import LabError, LabState
from backends.platform.lab.topology import LabTopology
from backends.platform.wait import WaitTimeout, wait_until

RUNTIME_MODULE = "backends.click.runtime"


def load_rules(state: LabState, topo: LabTopology, ovs: PrivateOvs, build_dir: Path) -> None:
    for sw, (br, _, _) in topo.bridges.items():
        flows = build_dir / "openflow" / f"{sw}.ofctl"
        groups = build_dir / "openflow" / f"{sw}.groups"
        ovs.add_flows(br, flows, groups if groups.exists() else None)


def runtime_argv(config: Path, stats: Path) -> list[str]:
    return [sys.executable, "-m", RUNTIME_MODULE, str(config), "--stats-file", str(stats), "--stats-interval", "1"]


def stats_file(state: LabState, host: str) -> Path:
    return state.run_dir / "stats" / f"click.{host}.json"


def runtime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec(RUNTIME_MODULE) is not None


def start_static(
    state: LabState, topo: LabTopology, ovs: PrivateOvs, files: dict[str, str], log: Callable[[str], object]
) -> None:
    build_dir = state.run_dir / "build"
    load_rules(state, topo, ovs, build_dir)
    log(f"loaded the compiled rules into {len(topo.bridges)} bridge(s)")
    other = sorted(p for p in files if p.startswith(("process/", "vm/")))
    if other:
        state.notes.append(
            "static mode runs Click only; not started: "
            + ", ".join(other)
            + " (use platform mode, where the agents run them)"
        )
    configs = sorted(p for p in files if p.startswith("click/"))
    if configs and not runtime_available():
        raise LabError(
            f"the Click runtime ({RUNTIME_MODULE}) is not installed in this checkout; "
            "it runs the hosts' Click configurations"
        )
    for path in configs:
        host = Path(path).stem
        start_click(state, host, build_dir / path)
    if configs:
        wait_ready(state, [Path(p).stem for p in configs])
    log(f"started the Click runtime on {len(configs)} host(s)")


def start_click(state: LabState, host: str, config: Path, label: str | None = None) -> int:
    label = label or f"click.{host}"
    state.pids[label] = 0
    state.save()
    stats = stats_file(state, host)
    stats.parent.mkdir(parents=True, exist_ok=True)
    pid = nodes.start_process(
        state.name, state.netns[host], runtime_argv(config, stats), state.run_dir / "logs" / f"{label}.log"
    )
    state.pids[label] = pid
    state.save()
    return pid


def wait_ready(state: LabState, hosts: list[str], timeout: float = 30.0) -> None:
    """Wait until each host's runtime has written its stats file: its devices are open."""
    pending = set(hosts)

    def all_ready() -> bool:
        for host in list(pending):
            if stats_file(state, host).exists():
                pending.discard(host)
            elif not nodes._alive(state.pids.get(f"click.{host}", 0)):
                logf = state.run_dir / "logs" / f"click.{host}.log"
                tail = logf.read_text(errors="replace")[-1500:] if logf.exists() else ""
                raise LabError(f"the Click runtime of host {host} exited; its log ({logf}):\n{tail}")
        return not pending

    try:
        wait_until(all_ready, timeout, "the Click runtimes to open their interfaces")
    except WaitTimeout:
        raise LabError(
            f"the Click runtime did not open its interfaces within {timeout:.0f}s on: " + ", ".join(sorted(pending))
        ) from None
