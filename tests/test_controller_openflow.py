"""The controller's OpenFlow listener against junk, on a real `fsc controller`
process over real TCP: 1,000 bad connections (bare connect and close, random
bytes, half a hello) leave its threads and file descriptors where they were;
connections that never finish the handshake are closed; a switch that
speaks OpenFlow 1.3 still connects afterwards and is forgotten when it goes;
the listener binds where it is told, the loopback by default."""

from __future__ import annotations

import os
import random
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_controller_harness import FSC, ROOT, Controller, free_port

from backends.platform.controller.ofserver import HANDSHAKE_TIMEOUT
from backends.platform.wait import wait_until

OFP13 = 4
HELLO, ECHO_REQUEST, ECHO_REPLY, FEATURES_REQUEST, FEATURES_REPLY = 0, 2, 3, 5, 6
MULTIPART_REQUEST, MULTIPART_REPLY, PORT_DESC = 18, 19, 13


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    c = Controller(tmp_path_factory.mktemp("h2of") / "state", "127.0.0.1")
    c.start()
    yield c
    assert c.stop() == 0
    assert "Traceback" not in c.log.read_text()


def counts(pid: int) -> tuple[int, int]:
    """(threads, open file descriptors) of a process."""
    return len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))


def at_most(pid: int, limit: tuple[int, int]) -> bool:
    """Threads and fds no more than ``limit`` (the HTTP side's idle worker
    threads and kept-alive connections only ever go away meanwhile)."""
    now = counts(pid)
    return now[0] <= limit[0] and now[1] <= limit[1]


def unknown_switches(ctl: Controller) -> list[int]:
    api = ctl.api
    try:
        return api.status().unknown_switches
    finally:
        api.session.close()  # no kept-alive connection left behind to count


def header(kind: int, length: int, xid: int) -> bytes:
    return struct.pack("!BBHI", OFP13, kind, length, xid)


class Switch:
    """A minimal OpenFlow 1.3 switch: hello, features, port description, echo."""

    def __init__(self, port: int, dpid: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.dpid = dpid
        self.sock.sendall(header(HELLO, 8, 1))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            part = self.sock.recv(n - len(buf))
            if not part:
                raise EOFError
            buf += part
        return buf

    def _serve(self) -> None:
        try:
            while True:
                _, kind, length, xid = struct.unpack("!BBHI", self._read(8))
                body = self._read(length - 8)
                if kind == FEATURES_REQUEST:
                    self.sock.sendall(
                        header(FEATURES_REPLY, 32, xid) + struct.pack("!QIBB2xII", self.dpid, 0, 254, 0, 0, 0)
                    )
                elif kind == MULTIPART_REQUEST and struct.unpack("!H", body[:2])[0] == PORT_DESC:
                    self.sock.sendall(header(MULTIPART_REPLY, 16, xid) + struct.pack("!HH4x", PORT_DESC, 0))
                elif kind == ECHO_REQUEST:
                    self.sock.sendall(header(ECHO_REPLY, length, xid) + body)
        except (EOFError, OSError):
            pass

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


def test_a_thousand_bad_connections_leak_nothing(ctl: Controller) -> None:
    assert ctl.proc is not None
    pid, port = ctl.proc.pid, ctl.of_port
    rng = random.Random(6653)

    def junk(kind: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            if kind == 1:
                s.sendall(rng.randbytes(rng.randrange(1, 200)))
            elif kind == 2:
                s.sendall(header(HELLO, 16, 7) + b"\x00\x01")  # a hello that announces more than it sends

    for k in range(3):  # warm up: whatever is created once (logging, caches) is there before counting
        junk(k)
    before = counts(pid)
    # connections that never finish the handshake, held open: the controller closes them
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
    for s in held[5:]:
        s.sendall(header(HELLO, 16, 9))
    for i in range(1000):
        junk(i % 3)

    def closed_by_controller(s: socket.socket) -> bool:
        s.settimeout(0.05)
        try:
            while data := s.recv(4096):  # its hello (and features request), then EOF
                del data
            return True
        except TimeoutError:
            return False
        except OSError:
            return True

    wait_until(
        lambda: all(closed_by_controller(s) for s in held), HANDSHAKE_TIMEOUT + 10, "unfinished handshakes closed"
    )
    for s in held:
        s.close()
    wait_until(lambda: at_most(pid, before), 20, f"threads and fds back to {before}")
    after = counts(pid)
    # a real switch still gets in (two threads while it is connected), and is forgotten when it goes
    sw = Switch(port, 0x99)
    wait_until(lambda: unknown_switches(ctl) == [0x99], 10, "the switch to connect")
    assert counts(pid)[0] >= after[0] + 2
    sw.close()
    wait_until(lambda: unknown_switches(ctl) == [], 10, "the switch to be forgotten")
    wait_until(lambda: at_most(pid, before), 20, f"threads and fds back to {before} after the switch left")
    log = ctl.log.read_text()
    assert "Traceback" not in log and "that were not a switch" in log


@pytest.mark.root
def test_openflow_listens_on_the_loopback_unless_told(tmp_path: Path) -> None:
    """In a network namespace of its own (so port 6653 is free), with no
    --openflow: the listening socket is 127.0.0.1:6653, not every address."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (a network namespace): run it as root")
    http = free_port()
    proc = subprocess.Popen(
        [
            "unshare",
            "--net",
            "sh",
            "-c",
            f'ip link set lo up && exec "$0" controller --listen 127.0.0.1:{http} --state "$1"',
            FSC,
            str(tmp_path / "state"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:

        def listening() -> set[str]:
            rows = Path(f"/proc/{proc.pid}/net/tcp").read_text().splitlines()[1:]
            return {r.split()[1] for r in rows if r.split()[3] == "0A"}  # LISTEN

        found = wait_until(lambda: proc.poll() is None and {a for a in listening() if a.endswith(":19FD")}, 20, "6653")
        assert found == {"0100007F:19FD"}, found  # 127.0.0.1:6653, not 00000000:19FD
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
