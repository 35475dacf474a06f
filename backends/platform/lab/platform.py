"""Platform mode of the lab: the controller, one agent per host, then apply.

Where things run and how they reach each other:

* the controller (``fsc controller``) runs in the switches' namespace; the
  bridges connect to its OpenFlow port on 127.0.0.1, its HTTP API listens on
  every address of that namespace; its state directory is ``RUN/controller``
  (the token is ``RUN/controller/token``);
* each agent (``fsc agent --lab``) runs in its host's namespace and reaches the
  controller over the host's ``mgmt0`` veth (169.254.K.2 -> 169.254.K.1);
  the namespaces the agent makes for ``vm`` instances are named
  ``fsclab-LAB-vm-...`` so that `down` finds them;
* `fsc apply` (and the user's `fsc status`/`plan`/`apply`) reaches it from the
  root namespace over the lab's ``fl-LAB`` veth (a /30 in 169.254.255.0/24).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from backends.platform.lab import nodes
from backends.platform.lab.state import LabError, LabState, netns_name
from backends.platform.lab.topology import LabTopology
from backends.platform.wait import WaitTimeout, wait_until

HTTP_PORT = 6680
OPENFLOW_PORT = 6653
FSC = [sys.executable, "-m", "fslang.cli"]


def controller_dir(state: LabState) -> Path:
    return state.run_dir / "controller"


def start_controller(state: LabState, env: dict[str, str] | None = None) -> None:
    """Start the controller (``env``: extra environment, e.g. the test hook
    FSC_CONTROLLER_PAUSE_AFTER=install)."""
    state.pids["controller"] = 0
    state.save()
    argv = [
        *FSC,
        "controller",
        "--listen",
        f"0.0.0.0:{HTTP_PORT}",
        "--openflow",
        f"127.0.0.1:{OPENFLOW_PORT}",
        "--state",
        str(controller_dir(state)),
    ]
    state.pids["controller"] = nodes.start_process(
        state.name, state.ovs_netns, argv, state.run_dir / "logs" / "controller.log", env=env
    )
    state.save()


def kill_controller(state: LabState) -> None:
    """SIGKILL the controller: a crash, no chance to clean up."""
    import os
    import signal

    pid = state.pids.get("controller", 0)
    if pid and nodes._alive(pid):
        os.kill(pid, signal.SIGKILL)
        try:
            wait_until(lambda: nodes.gone(pid), 10, f"the killed controller (pid {pid}) to end")
        except WaitTimeout as e:
            raise LabError(str(e)) from None


def restart_controller(state: LabState, topo: LabTopology, env: dict[str, str] | None = None) -> dict:
    """Kill the controller and start it again on the same state; waits until
    every switch is connected again."""
    kill_controller(state)
    start_controller(state, env)
    return wait_controller(state, topo)


def request(state: LabState, method: str, path: str, body: object | None = None, timeout: float = 5.0) -> object:
    """One JSON call to the controller from the root namespace."""
    token = Path(state.token_file).read_text().strip()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        state.controller_url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode())


def wait_controller(state: LabState, topo: LabTopology, timeout: float = 60.0) -> dict:
    """Until the token exists, the API answers and every switch is connected;
    a controller that exits first is a LabError at once."""
    last = "no answer yet"

    def ready() -> dict | None:
        nonlocal last
        if not nodes._alive(state.pids.get("controller", 0)):
            raise LabError("the controller exited:\n" + _tail(state.run_dir / "logs" / "controller.log"))
        if not Path(state.token_file).exists():
            return None
        try:
            status = request(state, "GET", "/v1/status")
        except (OSError, urllib.error.URLError, ValueError) as e:
            last = str(e)
            return None
        conn = _connected(status)
        if all(dpid in conn for _, dpid, _ in topo.bridges.values()):
            return status  # type: ignore[return-value]
        last = f"switches connected: {sorted(hex(d) for d in conn)}"
        return None

    try:
        return wait_until(ready, timeout, "the controller", max_interval=0.2)
    except WaitTimeout:
        raise LabError(
            f"the controller is not ready after {timeout:.0f}s ({last}); its log:\n"
            + _tail(state.run_dir / "logs" / "controller.log")
        ) from None


def _connected(status: object) -> set[int]:
    """Datapath ids of the connected switches, deployed ones or not yet known."""
    if not isinstance(status, dict):
        return set()
    out = {int(s["dpid"]) for s in status.get("switches") or [] if isinstance(s, dict) and s.get("connected")}
    return out | {int(d) for d in status.get("unknown_switches") or []}


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return f"({path} missing)"


def start_agents(state: LabState, topo: LabTopology) -> None:
    for h in topo.hosts.values():
        start_agent(state, h.name, f"http://{h.mgmt_ovs}:{HTTP_PORT}")


def start_agent(state: LabState, host: str, url: str) -> None:
    """`fsc agent --lab` in ``host``'s namespace, reaching the controller at ``url``."""
    state.controller_url_hosts[host] = url
    label = f"agent.{host}"
    state.pids[label] = 0
    state.save()
    argv = [
        *FSC,
        "agent",
        "--host",
        host,
        "--controller",
        url,
        "--token-file",
        state.token_file,
        "--lab",
        "--state-dir",
        str(state.run_dir / "agents" / host),
        "--netns-prefix",
        netns_name(state.name, "vm-"),
    ]
    log = state.run_dir / "logs" / f"{label}.log"
    state.pids[label] = nodes.start_process(state.name, state.netns[host], argv, log)
    state.save()


def apply(state: LabState, site_file: str | Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """`fsc apply SITE --controller URL --token-file F --yes` from the root namespace."""
    return subprocess.run(
        [
            *FSC,
            "apply",
            str(site_file),
            "--controller",
            state.controller_url,
            "--token-file",
            state.token_file,
            "--yes",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[3],
    )


def connect_bridges(state: LabState) -> None:
    from backends.platform.lab.build import ovs_of

    ovs = ovs_of(state)
    for br in state.bridges.values():
        ovs.vsctl("set-controller", br, f"tcp:127.0.0.1:{OPENFLOW_PORT}")


def start_platform(state: LabState, topo: LabTopology, log: Callable[[str], object]) -> None:
    state.controller_url = f"{state.controller_url}:{HTTP_PORT}"
    state.token_file = str(controller_dir(state) / "token")
    state.save()
    start_controller(state)
    connect_bridges(state)
    wait_controller(state, topo)
    log(f"controller up at {state.controller_url}, {len(topo.bridges)} switch(es) connected")
    start_agents(state, topo)
    log(f"started {len(topo.hosts)} agent(s)")
    cp = apply(state, state.site_file)
    (state.run_dir / "logs" / "apply.log").write_text(cp.stdout + cp.stderr)
    if cp.returncode != 0:
        raise LabError(f"`fsc apply` failed (exit {cp.returncode}):\n{cp.stdout[-2000:]}{cp.stderr[-2000:]}")
    log("applied the site through the controller")
