"""``python -m backends.platform.agent.reference``: a module instance's reference behaviour on a device.

What the agent runs for a `vm` instance in the lab (no hypervisor) and for a
`process` instance whose program is not installed (``--lab``): it reads frames
from ``--iface`` (AF_PACKET), applies the module's behaviour
(:mod:`backends.platform.agent.behaviour`) and writes the answer back on the same
device with the same VLAN id and the output index in the PCP bits.

The kernel takes the outer VLAN tag off received frames and reports it in
``PACKET_AUXDATA``; the program reads it from there (or from the frame, when
the device left it in place).  Frames this socket sent itself are ignored.

Counters go to ``--stats`` as JSON (atomic rename), written once the module
is built and then at most every 0.2 s. ``--ready`` (the agent's readiness
signal) is written as soon as the socket is bound, before the module is built
from the site source (which takes about a second): frames that come meanwhile
wait in the socket's buffer and are answered once it is built, so an instance
started by a failover is in the path a second sooner and loses nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported once the socket is bound (the compiler's front end takes a while)
    from backends.platform.agent.behaviour import Behaviour

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
_AUX = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
STATS_EVERY = 0.2
#: Receive buffer: holds the frames that come while the module is being built.
RCVBUF = 4 << 20


def write_json(path: Path, doc: dict[str, object]) -> None:
    """Atomic: readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def open_socket(iface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.bind((iface, 0))
    return sock


def receive(sock: socket.socket) -> tuple[int | None, bytes] | None:
    """(TCI the kernel took off, or None; frame) of one incoming frame; None for our own."""
    data, anc, _flags, addr = sock.recvmsg(65535, socket.CMSG_SPACE(_AUX.size))
    if addr[2] == PACKET_OUTGOING:
        return None
    for level, kind, blob in anc:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(blob) >= _AUX.size:
            status, _len, _snap, _mac, _net, tci, _tpid = _AUX.unpack_from(blob)
            if status & TP_STATUS_VLAN_VALID:
                return tci, data
    return None, data


def serve(sock: socket.socket, behaviour: Behaviour, stats: Path, stop: list[bool]) -> None:
    write_json(stats, behaviour.stats())
    last = time.monotonic()
    dirty = False
    while not stop:
        ready, _, _ = select.select([sock], [], [], STATS_EVERY)
        if ready:
            got = receive(sock)
            if got is not None:
                answer = behaviour.handle(*got).answer
                if answer is not None:
                    sock.send(answer)
                dirty = True
        now = time.monotonic()
        if dirty and now - last >= STATS_EVERY:
            write_json(stats, behaviour.stats())
            last, dirty = now, False
    write_json(stats, behaviour.stats())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m backends.platform.agent.reference", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--iface", required=True, help="the device Click's frames arrive on")
    ap.add_argument("--instance", required=True, help="instance name, e.g. ids#1")
    ap.add_argument("--module", default="", help="module name (default: the instance name less #N)")
    ap.add_argument("--site-source", type=Path, help="the site's FSL source (parameters of the module)")
    ap.add_argument("--stats", type=Path, required=True, help="JSON counters file")
    ap.add_argument("--seed", type=Path, help="counters of an earlier run to continue from")
    ap.add_argument("--ready", type=Path, help="file written once the socket is bound")
    args = ap.parse_args(argv)
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    try:
        sock = open_socket(args.iface)
        if args.ready is not None:
            args.ready.write_text(f"{os.getpid()}\n", encoding="utf-8")
        from backends.platform.agent.behaviour import Behaviour, module_from_source, module_name

        source = args.site_source.read_text(encoding="utf-8") if args.site_source else ""
        module, note = module_from_source(source, args.module or module_name(args.instance))
        behaviour = Behaviour(args.instance, module, note)
        if args.seed and args.seed.exists():
            behaviour.seed(json.loads(args.seed.read_text(encoding="utf-8")))
        serve(sock, behaviour, args.stats, stop)
    except OSError as err:
        print(f"reference behaviour of {args.instance} on {args.iface}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
