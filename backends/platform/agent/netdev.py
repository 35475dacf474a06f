"""Devices and namespaces for instances, with iproute2 (``ip``).

The host's Click configuration reaches every `process` and `vm` instance
through the device ``tap_name(instance)``.  The agent creates it before the
instance (and before any Click configuration that names it) and keeps it
across restarts of the instance, so that Click's sockets on it stay valid;
it goes away only when the instance is no longer wanted.

* lab `vm`: a veth pair, ``tap_name`` on the host side, the peer moved into the
  instance's own network namespace as ``eth0``;
* `process`: a veth pair, the peer (:func:`peer_name`) stays with the process;
* `vm` with a hypervisor: a tap device that libvirt attaches to the domain
  (``<target dev='TAP' managed='no'/>``, backends/vm).
"""

from __future__ import annotations

import hashlib
import subprocess


class DeviceError(RuntimeError):
    """An ``ip`` command failed; the message names the command and the fix."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    except FileNotFoundError as err:
        raise DeviceError("`ip` (iproute2) is not installed: install Debian package iproute2") from err
    if check and res.returncode != 0:
        hint = (
            " (the agent needs root, or CAP_NET_ADMIN, for devices)" if "Operation not permitted" in res.stderr else ""
        )
        raise DeviceError(f"ip {' '.join(args)}: {res.stderr.strip()}{hint}")
    return res


def peer_name(device: str) -> str:
    """The instance-side end of ``device``'s veth pair (15 characters at most)."""
    return "fsp" + hashlib.sha256(device.encode()).hexdigest()[:10]


def link_exists(name: str, netns: str | None = None) -> bool:
    args = ("-n", netns) if netns else ()
    return ip(*args, "link", "show", "dev", name, check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return name in {line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()}


def ensure_veth(device: str, peer: str) -> None:
    """A veth pair ``device`` <-> ``peer``, both up (kept when it exists)."""
    if not link_exists(device):
        if link_exists(peer):
            ip("link", "del", "dev", peer)
        ip("link", "add", device, "type", "veth", "peer", "name", peer)
    ip("link", "set", "dev", device, "up")
    if link_exists(peer):
        ip("link", "set", "dev", peer, "up")


def ensure_netns_veth(device: str, netns: str, inner: str = "eth0") -> None:
    """``device`` here, its peer as ``inner`` in namespace ``netns`` (created when missing)."""
    if not netns_exists(netns):
        ip("netns", "add", netns)
    ip("-n", netns, "link", "set", "dev", "lo", "up")
    if link_exists(inner, netns) and link_exists(device):
        ip("link", "set", "dev", device, "up")
        return
    peer = peer_name(device)
    ensure_veth(device, peer)
    ip("link", "set", "dev", peer, "netns", netns)
    ip("-n", netns, "link", "set", "dev", peer, "name", inner)
    ip("-n", netns, "link", "set", "dev", inner, "up")


def ensure_tap(device: str) -> None:
    """A persistent tap device for a libvirt domain (``managed='no'``)."""
    if not link_exists(device):
        ip("tuntap", "add", "dev", device, "mode", "tap")
    ip("link", "set", "dev", device, "up")


def delete_link(name: str) -> None:
    if link_exists(name):
        ip("link", "del", "dev", name, check=False)


def delete_netns(name: str) -> None:
    if netns_exists(name):
        ip("netns", "del", name, check=False)
