"""`fsc lab up / down / exec`: a whole site on this machine.

``up`` takes the compiled site (the CLI compiles it), builds the network (:mod:`backends.platform.lab.build`) and
then runs it in one of two modes:

* ``platform`` (default): the controller in the switches' namespace, one agent
  per module host in the host's namespace, then ``fsc apply`` through the
  controller (:mod:`backends.platform.lab.platform`);
* ``static``: no controller: the compiled rules are loaded straight into the
  bridges with ``ovs-ofctl --bundle add-flows`` and each host's Click
  configuration runs in the project's userlevel Click runtime in the host's
  namespace (:mod:`backends.platform.lab.dataplane`).

Any failure during ``up`` tears down what was built and raises LabError.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backends.platform.lab import build, nodes
from backends.platform.lab.state import (
    MARKER,
    LabError,
    LabState,
    LabUsageError,
    NoSuchLab,
    check_name,
    list_labs,
    root_link_name,
)
from backends.platform.lab.topology import LabTopology, plan_topology
from compiler.ir import Site
from compiler.pipeline import Compiled


@dataclass(frozen=True)
class CompiledSite:
    """What the lab runs: the checked site, its compilation and its files
    (built by :func:`fslang.api.build_file`; the lab never compiles)."""

    site: Site
    compiled: Compiled
    files: dict[str, str]


def up(
    site_file: Path,
    cs: CompiledSite,
    name: str | None = None,
    mode: str = "platform",
    log: Callable[[str], object] = lambda msg: sys.stderr.write(msg + "\n"),
) -> LabState:
    """Bring the lab for ``site_file`` up; returns its state (also on disk)."""
    site_file = Path(site_file).resolve()
    topo = plan_topology(cs.site)
    lab = check_name(name or _default_name(cs.site.name))
    if mode not in ("platform", "static"):
        raise LabUsageError(f"unknown lab mode {mode!r}: platform or static")
    build.preflight(need_tc=bool(topo.boxes))
    if lab in list_labs() or LabState(lab).run_dir.exists():
        raise LabError(f"a lab named {lab!r} exists ({LabState(lab).run_dir}); `fsc lab down --name {lab}` first")
    # every process started from here on (Mininet's shells, the OVS daemons) carries the
    # marker, so that `down` finds them even when this process is killed half-way
    saved_marker = os.environ.get(MARKER)
    os.environ[MARKER] = lab
    try:
        return _up(site_file, cs, topo, lab, mode, log)
    finally:
        if saved_marker is None:
            os.environ.pop(MARKER, None)
        else:
            os.environ[MARKER] = saved_marker


def _up(
    site_file: Path, cs: CompiledSite, topo: LabTopology, lab: str, mode: str, log: Callable[[str], object]
) -> LabState:
    state = LabState(lab, site_file=str(site_file), site=topo.site, mode=mode)
    state.addresses = {e.name: e.address for e in topo.edges.values()}
    state.edge_nets = {
        e.name: e.nets + (["every other address"] if e.owns_default else []) for e in topo.edges.values()
    }
    state.save()
    try:
        from backends.emit.write import write

        write(state.run_dir / "build", cs.files)
        log(
            f"lab {lab}: building {len(topo.bridges)} switch(es), {len(topo.hosts)} host(s), "
            f"{len(topo.edges)} edge(s), {len(topo.boxes)} box(es)"
        )
        ovs = build.build_network(state, topo)
        if mode == "static":
            from backends.platform.lab import dataplane

            dataplane.start_static(state, topo, ovs, cs.files, log)
        else:
            from backends.platform.lab import platform

            platform.start_platform(state, topo, log)
        state.phase = "up"
        state.save()
    except BaseException as e:
        state.phase = "failed"
        state.save()
        kept = _keep_logs(state)
        problems = build.teardown(state)
        where = f"; everything built was removed, the logs are kept in {kept}" if kept else ""
        if isinstance(e, LabError):  # the same class: it decides the exit code
            raise type(e)(
                f"{e}{where}" + (f"\n(cleaning up also met: {'; '.join(problems)})" if problems else "")
            ) from None
        if isinstance(e, Exception):
            raise LabError(f"lab up failed: {type(e).__name__}: {e}{where}") from e
        raise
    return state


def _keep_logs(state: LabState) -> str:
    """Copy the logs of a failed `up` out of the run directory (which `down` removes)."""
    import shutil
    import tempfile

    logs = [
        *(state.run_dir / "logs").glob("*.log"),
        *(state.run_dir / "ovs").glob("*.log"),
        *(state.run_dir / "agents").glob("*/instances/*/log"),
    ]
    if not logs:
        return ""
    dest = Path(tempfile.mkdtemp(prefix=f"fsc-lab-{state.name}-failed-"))
    for f in logs:
        rel = f.relative_to(state.run_dir)
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest / rel)
    return str(dest)


def _default_name(site: str) -> str:
    s = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in site.lower())
    return s[:24].strip("_") or "lab"


def down(name: str | None = None) -> list[str]:
    """Remove the lab; returns problems met (empty: nothing is left). A lab
    with no readable record is still removed by its names and marker; a name
    with no trace at all on this machine is NoSuchLab (a typo must not say
    "down")."""
    lab = resolve(name)
    try:
        state = LabState.load(lab)
    except LabError as e:
        if isinstance(e, NoSuchLab) and not _traces(lab):
            raise
        state = LabState(lab)  # no or unreadable record: still remove what the marker and names find
        state.netns = {n: n for n in nodes.netns_list() if n.startswith(f"fsclab-{lab}-")}
        if (state.run_dir / "ovs").is_dir():
            state.ovs_dir, state.ovs_netns = str(state.run_dir / "ovs"), f"fsclab-{lab}-{build.OVS_NODE}"
            state.netns.pop(state.ovs_netns, None)
        state.root_links = [root_link_name(lab)]
    return build.teardown(state)


def _traces(lab: str) -> bool:
    """Anything of lab ``lab`` on this machine: its run directory, a namespace, a marked process."""
    return (
        LabState(lab).run_dir.exists()
        or any(n.startswith(f"fsclab-{lab}-") for n in nodes.netns_list())
        or bool(nodes.marked_pids(lab))
    )


def resolve(name: str | None) -> str:
    if name:
        return check_name(name)
    labs = list_labs()
    if len(labs) == 1:
        return labs[0]
    if not labs:
        raise NoSuchLab("no lab is up; start one with `fsc lab up SITE.fs`")
    raise LabUsageError(f"several labs are up ({', '.join(labs)}): say which with --name")


def exec_argv(name: str | None, node: str, cmd: list[str]) -> list[str]:
    """The argv that runs ``cmd`` inside ``node``'s namespace (the command is
    looked up first: `ip netns exec` would only say "exec failed", exit 255)."""
    state = LabState.load(resolve(name))
    if node not in state.netns:
        raise LabUsageError(f"lab {state.name} has no node {node!r}; nodes: {', '.join(sorted(state.netns))}")
    if state.netns[node] not in nodes.netns_list():
        raise LabError(
            f"the namespace of node {node} ({state.netns[node]}) is gone; "
            f"`fsc lab down --name {state.name}`, then `fsc lab up` again"
        )
    if not cmd:
        cmd = [os.environ.get("SHELL", "/bin/sh")]
    if not shutil.which(cmd[0]):
        raise LabUsageError(f"no command {cmd[0]!r} on this machine (not on PATH, or not executable)")
    ip = nodes.which("ip")
    if ip is None:
        raise LabError("`ip` (iproute2) is not installed: apt install iproute2")
    return [ip, "netns", "exec", state.netns[node], *cmd]


def describe(state: LabState, topo: LabTopology | None = None) -> str:
    """What `up` built, for people."""
    lines = [f"lab {state.name} is up (site {state.site}, mode {state.mode}); run dir {state.run_dir}"]
    lines.append("switches: " + ", ".join(f"{sw} (bridge {br})" for sw, br in state.bridges.items()))
    hosts = [n for n in state.netns if n not in state.addresses and n != build.OVS_NODE]
    if hosts:
        lines.append("hosts and boxes: " + ", ".join(hosts))
    for edge, addr in state.addresses.items():
        owns = ", ".join(state.edge_nets.get(edge, [])) or "no net"
        lines.append(f"edge {edge}: traffic host {state.netns.get(edge, '?')}, address {addr}, answers for {owns}")
    if state.controller_url and state.mode == "platform":
        lines.append(f"controller: {state.controller_url}  token file: {state.token_file}")
    lines += state.notes
    lines.append(
        f"try: fsc lab exec {next(iter(state.addresses), 'NODE')} -- ping -c1 ADDRESS; fsc lab down --name {state.name}"
    )
    return "\n".join(lines)
