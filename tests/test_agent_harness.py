"""Helpers (no tests) for the agent's live tests: a minimal heartbeat endpoint (temporary,
until the controller's HTTP API can run in a test), the lab site, and frames
on real devices.  Everything is named ``h3...`` / ``fs-h3...``."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from backends.emit.output import render
from backends.platform.agent.reference import open_socket, receive
from backends.platform.controller.protocol import spec_digest
from backends.platform.wait import WaitTimeout, wait_until
from compiler.check.frontend import run
from compiler.pipeline import compile_site

TOKEN = "h3-secret-token"
SITE = """site h3lab
switch sw dpid 1
host h3a at sw:1 cores 8 memory 16GiB runs click, process, vm
edge e at sw:2 default
module h3bl  = process(command: "h3-not-installed --list /nowhere") kind process
module h3ids = ids(rules: "r") kind vm image "suricata.qcow2"
module h3cls = classify(web: tcp and dst port 80, mail: tcp and dst port 25) kind vm image "c.qcow2"
policy p via h3bl >> h3ids >> h3cls
"""


def site_files() -> dict[str, str]:
    result = run("h3lab.fs", SITE)
    assert result.site is not None, [d.message for d in result.diagnostics]
    c = compile_site(result.site)
    assert c.ok, [d.message for d in c.diagnostics]
    return render(c)


def spec(iid: str, kind: str, files: dict[str, str], source: str = "") -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": iid,
        "kind": kind,
        "generation": 0,
        "files": files,
        "site": "h3lab",
        "digest": spec_digest(files),
    }
    if source:
        doc["source"] = source
    return doc


class Endpoint:
    """``POST /v1/agents/HOST/heartbeat`` with a bearer token; records every heartbeat."""

    def __init__(self, host: str, bind: str = "127.0.0.1") -> None:
        self.host = host
        self.desired: list[dict[str, Any]] = []
        self.beats: list[dict[str, Any]] = []
        self.refused = 0  # heartbeats answered 503 while not available
        self.available = True
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"error": "bad token"})
                if self.path != f"/v1/agents/{outer.host}/heartbeat":
                    return self._send(404, {"error": "unknown host"})
                if not outer.available:
                    with outer.lock:
                        outer.refused += 1
                    return self._send(503, {"error": "down"})
                with outer.lock:
                    outer.beats.append(json.loads(body))
                    answer = {"instances": list(outer.desired), "interval": 0.2, "generation": 0}
                self._send(200, answer)

            def _send(self, code: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((bind, 0), Handler)
        self.url = f"http://{bind}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set_desired(self, specs: list[dict[str, Any]]) -> None:
        with self.lock:
            self.desired = specs

    def last(self) -> dict[str, dict[str, Any]]:
        """The last heartbeat's instances by id."""
        with self.lock:
            beat = self.beats[-1] if self.beats else {"instances": []}
        return {i["id"]: i for i in beat["instances"]}

    def wait(
        self, what: str, cond: Callable[[dict[str, dict[str, Any]]], bool], timeout: float = 20.0
    ) -> dict[str, dict[str, Any]]:
        def check() -> tuple[dict[str, dict[str, Any]]] | None:
            seen = self.last()
            return (seen,) if cond(seen) else None  # a tuple: an empty heartbeat may be what is awaited

        try:
            return wait_until(check, timeout, what)[0]
        except WaitTimeout as e:
            raise AssertionError(f"{e}; last heartbeat: {json.dumps(self.last(), indent=1)}") from None

    def beats_after(self, n: int, more: int, timeout: float = 20.0) -> None:
        """Until ``more`` heartbeats came after the first ``n``: the agent has
        seen its desired set (and acted on it) at least ``more - 1`` times."""
        try:
            wait_until(lambda: len(self.beats) >= n + more, timeout, f"{more} more heartbeats")
        except WaitTimeout as e:
            raise AssertionError(f"{e}; last heartbeat: {json.dumps(self.last(), indent=1)}") from None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- devices -----------------------------------------------------------------------------------
def ip_lines(*args: str) -> list[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True).stdout.splitlines()


def h3_links() -> list[str]:
    return sorted(
        line.split(":")[1].strip().split("@")[0]
        for line in ip_lines("-o", "link", "show")
        if line.split(":")[1].strip().startswith("fs-h3")
    )


def h3_namespaces() -> list[str]:
    return sorted(line.split()[0] for line in ip_lines("netns", "list") if line.startswith("h3"))


def cleanup_devices() -> None:
    for link in h3_links():
        subprocess.run(["ip", "link", "del", "dev", link], capture_output=True)
    for ns in h3_namespaces():
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def tcp_frame(dst_port: int, src: str = "10.0.0.1", dst: str = "10.0.1.5") -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    tcp = struct.pack("!HHIIBBHHH", 40000, dst_port, 0, 0, 0x50, 2, 1024, 0, 0)
    return bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip + tcp


def answers(sock: socket.socket, deadline: float) -> Iterator[tuple[int | None, bytes]]:
    """Frames read from ``sock`` until ``deadline`` as (TCI or None, untagged
    frame), whether the kernel moved the 802.1Q tag to auxdata or left it in."""
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            got = receive(sock)
        except TimeoutError:
            continue
        if got is None:
            continue
        tci, data = got
        if tci is None and data[12:14] == b"\x81\x00":
            tci, data = struct.unpack("!H", data[14:16])[0], data[:12] + data[16:]
        yield tci, data


def exchange(device: str, vid: int, frame: bytes, timeout: float = 3.0) -> int | None:
    """Send ``frame`` tagged ``vid`` (PCP 0) on ``device`` as Click would; the TCI of
    the answer with the same VLAN id and the same payload, or None if none comes."""
    sock = open_socket(device)
    try:
        tagged = frame[:12] + struct.pack("!HH", 0x8100, vid) + frame[12:]
        sock.send(tagged)
        for tci, data in answers(sock, time.monotonic() + timeout):
            if tci is not None and tci & 0x0FFF == vid and data[: len(frame)] == frame:
                return tci
        return None
    finally:
        sock.close()
