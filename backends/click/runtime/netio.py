"""Packets in and out on real network devices: AF_PACKET sockets and the
event loop of ``python -m backends.click.runtime``.

One raw socket per device (``ETH_P_ALL``, bound to the device, promiscuous
when a FromDevice asks for it, non-blocking).  On receive:

* frames the socket sees as outgoing (``PACKET_OUTGOING``: sent from this
  host, by this process or another) are ignored, so a runtime never reads
  back what it sent;
* Linux takes the 802.1Q tag off received frames and reports it in the
  ``PACKET_AUXDATA`` control message (``tp_vlan_tci`` with
  ``TP_STATUS_VLAN_VALID``); the tag is put back into the frame, as libpcap
  does, so ``12/8100`` classifiers see it.

The loop polls the sockets, hands each received burst to the router (push
paths run to completion), runs the pull tasks (ToDevice) after every burst,
waits for a device to take more when its socket is full, and writes the
statistics (``Router.stats`` plus per-device socket counters) as JSON.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
AUXDATA = struct.Struct("IIIHHHH")
_TAG = struct.Struct("!HH")
RECV_SIZE = 65600
ANC_SIZE = socket.CMSG_SPACE(AUXDATA.size)


def open_socket(device: str, promisc: bool = False, rcvbuf: int = 4 << 20) -> socket.socket:
    """A non-blocking raw socket on ``device`` (raises OSError if it does not exist)."""
    ifindex = socket.if_nametoindex(device)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.bind((device, ETH_P_ALL))
        s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        try:
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        except OSError:  # pragma: no cover - kernels before 4.20
            pass
        for force, opt in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:  # beyond net.core.rmem_max when privileged
                s.setsockopt(socket.SOL_SOCKET, force, rcvbuf)
            except OSError:
                try:
                    s.setsockopt(socket.SOL_SOCKET, opt, rcvbuf)
                except OSError:  # pragma: no cover
                    pass
        if promisc:
            s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b""))
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


def recv_frame(s: socket.socket) -> tuple[bytes | None, bool]:
    """(frame, more): the next frame with its 802.1Q tag put back; frame None
    for a frame to ignore (outgoing); more False when nothing is waiting."""
    try:
        data, anc, _flags, addr = s.recvmsg(RECV_SIZE, ANC_SIZE)
    except (BlockingIOError, InterruptedError):
        return None, False
    if addr[2] == PACKET_OUTGOING:
        return None, True
    if anc:
        level, kind, cdata = anc[0]
        if level == SOL_PACKET and kind == PACKET_AUXDATA:
            status, _len, _snap, _mac, _net, tci, tpid = AUXDATA.unpack_from(cdata)
            if status & TP_STATUS_VLAN_VALID:
                if not (status & TP_STATUS_VLAN_TPID_VALID) or not tpid:
                    tpid = 0x8100
                data = data[:12] + _TAG.pack(tpid, tci) + data[12:]
    return data, True


class SocketTransport:
    """The router's transport on AF_PACKET sockets."""

    def __init__(self, missing: str = "error", rename: dict[str, str] | None = None) -> None:
        self.missing = missing  # "error": a missing device stops the start; "wait": retried every second
        self.rename = dict(rename or {})  # configuration device name -> interface name
        self.socks: dict[str, socket.socket] = {}
        self.wanted: dict[str, bool] = {}  # device -> promiscuous
        self.counters: dict[str, dict[str, int]] = {}
        self.blocked: set[str] = set()

    def open_all(self, devices: dict[str, bool]) -> list[str]:
        """Open every device (name -> promiscuous); returns the ones missing."""
        self.wanted.update(devices)
        missing = []
        for dev, promisc in devices.items():
            self.counters.setdefault(dev, {"rx_ignored_outgoing": 0, "tx_errors": 0, "tx_blocked": 0})
            if dev in self.socks:
                continue
            ifname = self.rename.get(dev, dev)
            what = dev if ifname == dev else f"{dev} ({ifname})"
            try:
                socket.if_nametoindex(ifname)
            except OSError:
                if self.missing == "error":
                    raise OSError(f"device {what} does not exist") from None
                missing.append(what)
                continue
            try:
                self.socks[dev] = open_socket(ifname, promisc)
            except OSError as e:
                raise OSError(f"device {what}: {e.strerror or e}") from None
        return missing

    def send(self, device: str, frame: bytes | bytearray) -> bool | None:
        s = self.socks.get(device)
        if s is None:
            self.counters[device]["tx_errors"] += 1
            return False
        try:
            s.send(frame)
            return True
        except (BlockingIOError, InterruptedError):
            self.blocked.add(device)
            self.counters[device]["tx_blocked"] += 1
            return None
        except OSError:
            self.counters[device]["tx_errors"] += 1
            return False

    def close(self) -> None:
        for s in self.socks.values():
            s.close()
        self.socks.clear()


def write_json_atomic(path: str, data: Any) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def serve(
    router: Any, transport: SocketTransport, stats_file: str | None = None, stats_interval: float = 5.0, burst: int = 64
) -> int:
    """Run ``router`` on its devices until SIGTERM / SIGINT; SIGUSR1 writes
    the statistics now (to ``stats_file``, or stderr without one)."""
    flags = {"stop": False, "dump": False}
    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)
    os.set_blocking(wfd, False)

    def on_stop(signum: int, frame: Any) -> None:
        flags["stop"] = True

    def on_usr1(signum: int, frame: Any) -> None:
        flags["dump"] = True

    old = {
        sig: signal.signal(sig, h)
        for sig, h in ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop), (signal.SIGUSR1, on_usr1))
    }
    old_wakeup = signal.set_wakeup_fd(wfd)
    started = time.time()

    def snapshot() -> dict[str, Any]:
        st = router.stats()
        st["pid"] = os.getpid()
        st["time"] = time.time()
        st["started"] = started
        for dev, c in transport.counters.items():
            st["devices"].setdefault(dev, {}).update(c)
            st["devices"][dev]["open"] = dev in transport.socks
            st["devices"][dev]["ifname"] = transport.rename.get(dev, dev)
        return st

    def dump() -> None:
        data = snapshot()
        if stats_file:
            write_json_atomic(stats_file, data)
        else:
            sys.stderr.write(json.dumps(data, sort_keys=True) + "\n")
            sys.stderr.flush()

    poller = select.poll()
    poller.register(rfd, select.POLLIN)
    fd_dev: dict[int, str] = {}
    out_registered: set[str] = set()
    sources = set(router.sources)

    def register_new() -> None:
        for dev, s in transport.socks.items():
            if s.fileno() not in fd_dev:
                fd_dev[s.fileno()] = dev
                poller.register(s, select.POLLIN if dev in sources else 0)

    register_new()
    if stats_file:
        dump()  # the stats file appearing means: sockets open, running
    next_stats = time.monotonic() + stats_interval
    next_retry = time.monotonic() + 1.0
    try:
        while not flags["stop"]:
            wake_at = min(next_stats, next_retry) if stats_file else next_retry
            timeout = max(0.0, wake_at - time.monotonic())
            try:
                events = poller.poll(timeout * 1000)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                events = []
            for fd, ev in events:
                if fd == rfd:
                    try:
                        while os.read(rfd, 512):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                dev = fd_dev.get(fd)
                if dev is None:
                    continue
                if ev & select.POLLOUT:
                    transport.blocked.discard(dev)
                if ev & select.POLLIN:
                    s = transport.socks[dev]
                    for _ in range(burst):
                        frame, more = recv_frame(s)
                        if frame is None:
                            if not more:
                                break
                            transport.counters[dev]["rx_ignored_outgoing"] += 1
                            continue
                        router.inject(dev, frame)
                    router.run_tasks()
            router.run_tasks()
            # wait for writability only while a device is full
            for dev in list(out_registered - transport.blocked):
                s = transport.socks.get(dev)
                if s is not None:
                    poller.modify(s, select.POLLIN if dev in sources else 0)
                out_registered.discard(dev)
            for dev in transport.blocked - out_registered:
                s = transport.socks.get(dev)
                if s is not None:
                    poller.modify(s, (select.POLLIN if dev in sources else 0) | select.POLLOUT)
                    out_registered.add(dev)
            now = time.monotonic()
            if now >= next_retry:
                next_retry = now + 1.0
                if len(transport.socks) < len(transport.wanted):
                    transport.open_all({d: p for d, p in transport.wanted.items() if d not in transport.socks})
                    register_new()
            if flags["dump"]:
                flags["dump"] = False
                dump()
            if stats_file and now >= next_stats:
                next_stats = now + stats_interval
                dump()
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for sig, h in old.items():
            signal.signal(sig, h)
        if stats_file:
            dump()
        os.close(rfd)
        os.close(wfd)
    return 0
