"""Namespaces, wires and processes of a lab (iproute2, tc, Mininet).

How Mininet fits: a Mininet ``Host`` creates each node's network namespace
(``mnexec -n`` under a shell). Mininet's namespaces live as long as that shell,
i.e. as long as the Python process that built them, but a lab must outlive
`fsc lab up` and be entered by `fsc lab exec` from other processes. So each
Mininet namespace is pinned under a name (``ip netns attach NAME PID``) and the
shell is then stopped; from there on the node is an ordinary named namespace.
Wires are veth pairs created straight into their two namespaces
(``ip link add X netns A type veth peer Y netns B``): one end is a port of an
OVS bridge (the OVS runs in a namespace of its own, see
:mod:`backends.platform.lab.ovs`), the other the node's ``ethN``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from backends.platform.lab.state import MARKER, LabError
from backends.platform.wait import WaitTimeout, wait_until

_SBIN = "/usr/local/sbin:/usr/sbin:/sbin"


def which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + _SBIN)


def require_root() -> None:
    """Raise LabError unless this process is root."""
    if os.geteuid() != 0:
        raise LabError("fsc lab needs root (network namespaces, veths, Open vSwitch): run it with sudo")


def run(
    cmd: Sequence[str], *, check: bool = True, input: str | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run a command; a failure raises LabError naming the command and its stderr."""
    try:
        cp = subprocess.run(list(cmd), input=input, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"`{shlex.join(cmd)}` could not run: {e}") from None
    if check and cp.returncode != 0:
        raise LabError(f"`{shlex.join(cmd)}` failed (exit {cp.returncode}): {(cp.stderr or cp.stdout).strip()}")
    return cp


def netns_list() -> set[str]:
    out = run(["ip", "netns", "list"]).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def create_netns(name: str) -> None:
    """A network namespace named ``name``, made by a Mininet Host and pinned."""
    from mininet.node import Host  # imported late: Mininet is only needed here

    if name in netns_list():
        raise LabError(
            f"network namespace {name} already exists; `fsc lab down` the lab that owns it or `ip netns del {name}`"
        )
    host = Host(name[-60:], inNamespace=True)
    try:
        run(["ip", "netns", "attach", name, str(host.pid)])
    finally:
        host.terminate()
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def ns_run(ns: str, *cmd: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return run(["ip", "netns", "exec", ns, *cmd], check=check, input=input)


def ip_batch(ns: str, lines: list[str]) -> None:
    if lines:
        run(["ip", "-n", ns, "-batch", "-"], input="".join(line + "\n" for line in lines))


def veth(ns_a: str, if_a: str, ns_b: str, if_b: str, mtu: int | None = None) -> None:
    """A veth pair ``if_a`` in ``ns_a`` <-> ``if_b`` in ``ns_b``, both up, tx checksum offload off
    (and with MTU ``mtu`` when given).

    With offload on, a namespace hands TCP/UDP frames to the veth with the
    checksum unfilled; the OVS userspace datapath (and a Click runtime reading
    AF_PACKET) forward them as they are and the receiver drops them.
    """
    run(["ip", "link", "add", "name", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])
    for ns, ifn in ((ns_a, if_a), (ns_b, if_b)):
        run(["ip", "-n", ns, "link", "set", ifn, *(["mtu", str(mtu)] if mtu else []), "up"])
        offload_off(ns, ifn)


def offload_off(ns: str, ifname: str) -> None:
    ns_run(ns, "ethtool", "-K", ifname, "tx", "off", "rxvlan", "off", "txvlan", "off", check=False)


def sysctls(ns: str, settings: dict[str, str]) -> None:
    args = [f"{k}={v}" for k, v in settings.items()]
    ns_run(ns, "sysctl", "-q", "-w", *args, check=False)


def delete_netns(name: str) -> None:
    """Kill every process in the namespace, then delete it (its veths go with it)."""
    if name not in netns_list():
        return
    kill_pids(netns_pids(name))
    run(["ip", "netns", "del", name], check=False)


def netns_pids(name: str) -> list[int]:
    out = run(["ip", "netns", "pids", name], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def kill_pids(pids: list[int], grace: float = 2.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL what is left."""
    pids = [p for p in pids if p != os.getpid()]
    for p in pids:
        _signal(p, signal.SIGTERM)
    try:
        wait_until(lambda: all(gone(p) for p in pids), grace, "processes to end after SIGTERM")
    except WaitTimeout:
        pass  # SIGKILL below
    for p in pids:
        if _alive(p):
            _signal(p, signal.SIGKILL)
    for p in pids:
        _reap(p)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def gone(pid: int) -> bool:
    """The process has ended (reaped here if it is our child)."""
    _reap(pid)
    return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def marked_pids(lab: str) -> list[int]:
    """Every process whose environment carries this lab's marker."""
    want = f"{MARKER}={lab}".encode()
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if want in env:
            out.append(int(d.name))
    return out


def start_process(lab: str, ns: str | None, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> int:
    """Start ``argv`` in namespace ``ns`` (None: here), detached, output to ``log``; returns its pid."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env[MARKER] = lab
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        p = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
            cwd=str(Path(__file__).resolve().parents[3]),
        )
    return p.pid


def stop_process(lab: str, pid: int) -> None:
    """Stop a process (and its group) that this lab started."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return
    if f"{MARKER}={lab}".encode() not in env:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    kill_pids([pid])
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
