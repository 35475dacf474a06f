"""Long-lived TCP connections for the live-operation tests (a drain, a host
failure under traffic): run inside a lab node's namespace,

    python -m backends.platform.lab.longtcp --to ADDR:PORT --connections N --seconds S [--chunk B] [--every T]

opens N connections to an echo server (``traffic tcp-echo``), and on each
sends a numbered byte stream, ``chunk`` bytes every ``every`` seconds for
``seconds`` seconds, reading the echo back as it goes. One JSON line: per
connection its local port, bytes sent and received back, whether every byte
came back equal, and the error if one ended it (a reset says
``ConnectionResetError``).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time


def _stream(n: int) -> bytes:
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


def talk(to: tuple[str, int], seconds: float, chunk: int, every: float, out: dict) -> None:
    sent = bytearray()
    back = bytearray()
    try:
        s = socket.create_connection(to, timeout=10)
        out["port"] = s.getsockname()[1]
        s.settimeout(10)
        end = time.monotonic() + seconds
        pattern = _stream(1 << 16)
        while time.monotonic() < end:
            piece = bytes(pattern[(len(sent) + i) % len(pattern)] for i in range(chunk))
            s.sendall(piece)
            sent += piece
            while len(back) < len(sent):
                got = s.recv(65536)
                if not got:
                    raise ConnectionError("closed by the peer")
                back += got
            time.sleep(every)
        s.shutdown(socket.SHUT_WR)
        while True:
            got = s.recv(65536)
            if not got:
                break
            back += got
        s.close()
    except OSError as err:
        out["error"] = f"{type(err).__name__}: {err}"
    out["sent"], out["received"] = len(sent), len(back)
    out["ok"] = "error" not in out and bytes(back) == bytes(sent)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m backends.platform.lab.longtcp", description=__doc__.splitlines()[0])
    ap.add_argument("--to", required=True)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--every", type=float, default=0.05)
    args = ap.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    results: list[dict] = [{} for _ in range(args.connections)]
    threads = [
        threading.Thread(target=talk, args=((host, int(port)), args.seconds, args.chunk, args.every, r))
        for r in results
    ]
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join()
    sys.stdout.write(json.dumps({"connections": results}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
