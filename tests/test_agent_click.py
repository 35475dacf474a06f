"""The whole host with real frames: `fsc agent --lab` in a network namespace of
its own (``h3host``, its switch port ``eth0``), running the host's Click
configuration in the project's userlevel runtime plus a `process` and two
`vm` instances (reference behaviour).  A frame from the "switch" with the
entry tag of policy ``p`` (h3bl >> h3ids >> h3cls) goes through Click, each
instance over its tap device, and comes back to the switch with the exit
tag; every instance counts it."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.platform.agent.reference import open_socket
from tests.conftest import ROOT
from tests.test_agent_harness import (
    SITE,
    TOKEN,
    Endpoint,
    answers,
    cleanup_devices,
    h3_namespaces,
    site_files,
    spec,
    tcp_frame,
)

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("h3_devices")]  # they share the h3 names and devices
NS, SW, CTL = "h3host", "h3sw0", "h3ctl0"
CTL_IP, AGENT_IP = "10.213.7.1", "10.213.7.2"


def ip(*args: str) -> None:
    res = subprocess.run(["ip", *args], capture_output=True, text=True)
    assert res.returncode == 0, f"ip {' '.join(args)}: {res.stderr}"


def teardown() -> None:
    for link in (SW, CTL):
        subprocess.run(["ip", "link", "del", "dev", link], capture_output=True)
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    cleanup_devices()


def tag_of(vid: int, frame: bytes) -> bytes:
    return frame[:12] + struct.pack("!HH", 0x8100, vid) + frame[12:]


@pytest.fixture()
def host(tmp_path: Path) -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (network namespaces, veth pairs): run it as root")
    teardown()
    endpoint: Endpoint | None = None
    agent: subprocess.Popen[bytes] | None = None
    try:
        ip("netns", "add", NS)
        ip("-n", NS, "link", "set", "lo", "up")
        ip("link", "add", SW, "type", "veth", "peer", "name", "eth0", "netns", NS)
        ip("link", "add", CTL, "type", "veth", "peer", "name", "ctl0", "netns", NS)
        ip("addr", "add", f"{CTL_IP}/30", "dev", CTL)
        ip("-n", NS, "addr", "add", f"{AGENT_IP}/30", "dev", "ctl0")
        for args in (
            ("link", "set", SW, "up"),
            ("link", "set", CTL, "up"),
            ("-n", NS, "link", "set", "eth0", "up"),
            ("-n", NS, "link", "set", "ctl0", "up"),
        ):
            ip(*args)
        endpoint = Endpoint("h3a", bind=CTL_IP)
        files = site_files()
        endpoint.set_desired(
            [
                spec("click.g0", "click", {"click/h3a.click": files["click/h3a.click"]}),
                spec("h3bl", "process", {"process/h3bl.json": files["process/h3bl.json"]}, SITE),
                spec("h3ids", "vm", {"vm/h3ids.xml": files["vm/h3ids.xml"]}, SITE),
                spec("h3cls", "vm", {"vm/h3cls.xml": files["vm/h3cls.xml"]}, SITE),
            ]
        )
        (tmp_path / "token").write_text(TOKEN)
        log = open(tmp_path / "agent.log", "wb")
        path = ":".join(p for p in os.environ["PATH"].split(":") if not (Path(p) / "click").exists())
        agent = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                NS,
                str(ROOT / ".venv" / "bin" / "fsc"),
                "agent",
                "--host",
                "h3a",
                "--controller",
                endpoint.url,
                "--token-file",
                str(tmp_path / "token"),
                "--lab",
                "--state-dir",
                str(tmp_path / "state"),
                "--netns-prefix",
                "h3vm-",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PATH": path},
        )
        yield {"endpoint": endpoint, "agent": agent, "tmp": tmp_path, "files": files}
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(agent.pid, signal.SIGKILL)
        if endpoint is not None:
            endpoint.close()
        teardown()


def test_frame_through_click_and_every_instance(host: dict[str, Any]) -> None:
    ep: Endpoint = host["endpoint"]
    ids = {"click.g0", "h3bl", "h3ids", "h3cls"}
    try:
        ep.wait("all ready", lambda s: all(s.get(i, {}).get("state") == "ready" for i in ids), timeout=60)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{(host['tmp'] / 'agent.log').read_text()[-3000:]}") from None
    plan = json.loads(host["files"]["plan.json"])["steering"]["tags"]
    entry = int(next(t for t, name in plan.items() if name == "h3bl"))
    exit_tag = int(next(t for t, name in plan.items() if name == "exit"))
    sock = open_socket(SW)
    got_tags: list[int] = []
    try:
        for port in (80, 25, 443):
            frame = tcp_frame(port)
            sock.send(tag_of(entry, frame))
            for tci, data in answers(sock, time.monotonic() + 5):
                if data[: len(frame)] == frame:
                    got_tags.append(tci if tci is not None else -1)
                    break
    finally:
        sock.close()
    assert got_tags == [exit_tag] * 3, f"answers {got_tags}; log:\n{(host['tmp'] / 'agent.log').read_text()[-3000:]}"
    ep.wait("counters", lambda s: all(s[i]["packets"] >= 3 for i in ("click.g0", "h3bl", "h3ids", "h3cls")))
    stats = json.loads((host["tmp"] / "state" / "instances" / "h3cls" / "stats.json").read_text())
    assert stats["outputs"] == {"else": 1, "mail": 1, "web": 1}
    assert h3_namespaces() == ["h3host", "h3vm-h3a-h3cls", "h3vm-h3a-h3ids"]
