"""Traffic for lab tests: numbered UDP streams, a UDP sink, a TCP echo server
and client. Run inside a node's namespace (``fsc lab exec NODE -- python -m
backends.platform.lab.traffic ...``); results are one JSON line on stdout.

    udp-sink  --bind ADDR:PORT --seconds S [--expect N] -> {"received": [seq...], "peers": [...]}
    udp-send  --to ADDR:PORT --count N --rate PPS [--src ADDR] [--sport P [--flows K [--flow-step S]]]
                                                    -> {"sent": N}   (K flows: seq i from port P + (i % K) * S)
    tcp-echo  --bind ADDR:PORT --seconds S          -> {"connections": K, "bytes": B}
    tcp-talk  --to ADDR:PORT --bytes B [--src ADDR] -> {"ok": true|false, "bytes": B, "error": ...}
    raw-sink  --proto N --seconds S [--expect K]    -> {"packets": [hex of each IPv4 packet...]}
    tcp-hold  --to ADDR:PORT --count N --sport P [--stride S] --go FILE [--ready FILE] [--src ADDR]
              -> {"opened": N, "ok": K, "failed": [i...], "rounds": R}: N long connections from
                 ports P, P+S, ..., each echoing a few bytes every --interval until FILE exists
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time

_HDR = struct.Struct("!4sI")
_MAGIC = b"FSCL"


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def udp_sink(bind: str, seconds: float, ready: str | None = None, expect: int = 0) -> dict:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: any address of a `local` route
    s.bind(_addr(bind))
    if ready:
        open(ready, "w").close()
    s.settimeout(0.2)
    got: list[int] = []
    peers: set[str] = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (expect and len(set(got)) >= expect):
        try:
            data, peer = s.recvfrom(2048)
        except TimeoutError:
            continue
        if len(data) >= _HDR.size:
            magic, seq = _HDR.unpack_from(data)
            if magic == _MAGIC:
                got.append(seq)
                peers.add(f"{peer[0]}:{peer[1]}")
    return {"received": got, "peers": sorted(peers)}


def udp_send(
    to: str,
    count: int,
    rate: float,
    src: str | None = None,
    sport: int = 0,
    size: int = 64,
    flows: int = 1,
    step: int = 1,
) -> dict:
    socks = []
    for k in range(max(1, flows)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_IP, 15, 1)
        if src or sport:
            s.bind((src or "0.0.0.0", sport + k * step if sport else 0))
        socks.append(s)
    dest = _addr(to)
    pad = b"\0" * max(0, size - _HDR.size)
    start = time.monotonic()
    for seq in range(count):
        due = start + seq / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        socks[seq % len(socks)].sendto(_HDR.pack(_MAGIC, seq) + pad, dest)
    return {"sent": count, "seconds": round(time.monotonic() - start, 3)}


def tcp_echo(bind: str, seconds: float, ready: str | None = None) -> dict:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.SOL_IP, 15, 1)
    srv.bind(_addr(bind))
    srv.listen(256)
    if ready:
        open(ready, "w").close()
    srv.settimeout(0.2)
    stats = {"connections": 0, "bytes": 0}
    lock = threading.Lock()

    def serve(c: socket.socket) -> None:
        # idle for as long as the server runs: a client that opens many connections before its first
        # exchange (tcp-hold) leaves the early ones silent for seconds on a loaded machine
        c.settimeout(seconds)
        try:
            while data := c.recv(65536):
                c.sendall(data)
                with lock:
                    stats["bytes"] += len(data)
        except OSError:
            pass
        finally:
            c.close()

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            c, _ = srv.accept()
        except TimeoutError:
            continue
        stats["connections"] += 1
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    return stats


def tcp_talk(to: str, nbytes: int, src: str | None = None, timeout: float = 5.0) -> dict:
    """Send ``nbytes`` and read them back; ok when every byte came back equal."""
    payload = bytes((i * 7) & 0xFF for i in range(nbytes))
    try:
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(timeout)
        if src:
            c.setsockopt(socket.SOL_IP, 15, 1)
            c.bind((src, 0))
        c.connect(_addr(to))
        back = bytearray()
        sender = threading.Thread(target=c.sendall, args=(payload,), daemon=True)
        sender.start()
        while len(back) < nbytes:
            chunk = c.recv(65536)
            if not chunk:
                break
            back += chunk
        c.close()
        return {"ok": bytes(back) == payload, "bytes": len(back)}
    except OSError as e:
        return {"ok": False, "bytes": 0, "error": str(e)}


def tcp_hold(
    to: str,
    count: int,
    sport: int,
    go: str,
    ready: str | None = None,
    src: str | None = None,
    interval: float = 0.3,
    seconds: float = 60.0,
    nbytes: int = 64,
    stride: int = 1,
) -> dict:
    """Open ``count`` connections (source ports ``sport``..), then echo
    ``nbytes`` on each every ``interval`` until the file ``go`` exists (one
    last round) or ``seconds`` pass: long-lived connections that carry
    traffic while the platform changes under them."""
    conns: list[socket.socket | None] = []
    failed: set[int] = set()
    for i in range(count):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c.setsockopt(socket.SOL_IP, 15, 1)
        c.settimeout(5)
        try:
            c.bind((src or "0.0.0.0", sport + i * stride))
            c.connect(_addr(to))
            conns.append(c)
        except OSError:
            failed.add(i)
            conns.append(None)

    def exchange(i: int, c: socket.socket, k: int) -> None:
        payload = bytes(((i + k) * 7 + j) & 0xFF for j in range(nbytes))
        try:
            c.sendall(payload)
            back = bytearray()
            while len(back) < nbytes:
                chunk = c.recv(nbytes - len(back))
                if not chunk:
                    break
                back += chunk
            if bytes(back) != payload:
                failed.add(i)
        except OSError:
            failed.add(i)

    rounds = 0
    end = time.monotonic() + seconds
    while True:
        last = os.path.exists(go) or time.monotonic() > end
        for i, c in enumerate(conns):
            if c is not None and i not in failed:
                exchange(i, c, rounds)
        rounds += 1
        if rounds == 1 and ready:
            open(ready, "w").close()
        if last:
            break
        time.sleep(interval)
    for c in conns:
        if c is not None:
            c.close()
    return {"opened": count - len(failed), "ok": count - len(failed), "failed": sorted(failed), "rounds": rounds}


def raw_sink(proto: int, seconds: float, expect: int, ready: str | None = None) -> dict:
    """IPv4 packets of protocol ``proto`` delivered to this namespace, as hex (outer header included)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
    if ready:
        open(ready, "w").close()
    s.settimeout(0.2)
    got: list[str] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (expect and len(got) >= expect):
        try:
            data = s.recv(65535)
        except TimeoutError:
            continue
        got.append(data.hex())
    return {"packets": got}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m backends.platform.lab.traffic",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("udp-sink")
    a.add_argument("--bind", required=True)
    a.add_argument("--seconds", type=float, default=5)
    a.add_argument("--ready")
    a.add_argument("--expect", type=int, default=0, help="stop once this many distinct packets came")
    a = sub.add_parser("udp-send")
    a.add_argument("--to", required=True)
    a.add_argument("--count", type=int, default=100)
    a.add_argument("--rate", type=float, default=200)
    a.add_argument("--src")
    a.add_argument("--sport", type=int, default=0)
    a.add_argument("--flows", type=int, default=1, help="datagram i from source port sport + (i %% flows) * step")
    a.add_argument("--flow-step", type=int, default=1)
    a = sub.add_parser("tcp-echo")
    a.add_argument("--bind", required=True)
    a.add_argument("--seconds", type=float, default=5)
    a.add_argument("--ready")
    a = sub.add_parser("tcp-talk")
    a.add_argument("--to", required=True)
    a.add_argument("--bytes", type=int, default=10000)
    a.add_argument("--src")
    a = sub.add_parser("tcp-hold")
    a.add_argument("--to", required=True)
    a.add_argument("--count", type=int, default=10)
    a.add_argument("--sport", type=int, required=True)
    a.add_argument("--go", required=True)
    a.add_argument("--ready")
    a.add_argument("--src")
    a.add_argument("--interval", type=float, default=0.3)
    a.add_argument("--seconds", type=float, default=60)
    a.add_argument("--stride", type=int, default=1, help="source ports P, P+S, ... (spread over the flow hash)")
    a = sub.add_parser("raw-sink")
    a.add_argument("--proto", type=int, required=True)
    a.add_argument("--bind", default="", help="unused (uniform server arguments)")
    a.add_argument("--seconds", type=float, default=5)
    a.add_argument("--expect", type=int, default=0)
    a.add_argument("--ready")
    args = p.parse_args(argv)
    if args.cmd == "udp-sink":
        out = udp_sink(args.bind, args.seconds, args.ready, args.expect)
    elif args.cmd == "raw-sink":
        out = raw_sink(args.proto, args.seconds, args.expect, args.ready)
    elif args.cmd == "udp-send":
        out = udp_send(args.to, args.count, args.rate, args.src, args.sport, flows=args.flows, step=args.flow_step)
    elif args.cmd == "tcp-echo":
        out = tcp_echo(args.bind, args.seconds, args.ready)
    elif args.cmd == "tcp-hold":
        out = tcp_hold(
            args.to, args.count, args.sport, args.go, args.ready, args.src, args.interval, args.seconds, 64, args.stride
        )
    else:
        out = tcp_talk(args.to, args.bytes, args.src)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
