"""`fsc agent` against the real `fsc controller` (its HTTP API and heartbeat
bookkeeping): the controller's deployed site names host h3a; the agent pulls
its instances, runs them in lab mode and the controller's status shows the
host alive with every instance ready and counting the frames sent through."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.emit.vm.generate import tap_name
from backends.platform.controller.client import ApiClient, ClientError
from backends.platform.controller.state import StateDir
from backends.platform.wait import WaitTimeout, wait_until
from tests.conftest import ROOT
from tests.test_agent_harness import cleanup_devices, exchange, h3_links, h3_namespaces, site_files, tcp_frame

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("h3_devices")]  # they share the h3 names and devices
FSC = str(ROOT / ".venv" / "bin" / "fsc")
STANDIN_CLICK = (
    f"#!{sys.executable}\nimport signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
    "while True:\n    time.sleep(1)\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


@pytest.fixture()
def platform(tmp_path: Path) -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (network namespaces, veth pairs): run it as root")
    cleanup_devices()
    state = StateDir(tmp_path / "ctl")
    files = site_files()
    state.commit(0, files, "h3lab", "")
    token = state.token()
    url = f"http://127.0.0.1:{free_port()}"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "click").write_text(STANDIN_CLICK)
    (bin_dir / "click").chmod(0o755)
    procs: list[subprocess.Popen[bytes]] = []
    logs = {name: open(tmp_path / f"{name}.log", "wb") for name in ("controller", "agent")}
    try:
        procs.append(
            subprocess.Popen(
                [
                    FSC,
                    "controller",
                    "--listen",
                    url.removeprefix("http://"),
                    "--openflow",
                    f"127.0.0.1:{free_port()}",
                    "--state",
                    str(tmp_path / "ctl"),
                ],
                stdout=logs["controller"],
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        procs.append(
            subprocess.Popen(
                [
                    FSC,
                    "agent",
                    "--host",
                    "h3a",
                    "--controller",
                    url,
                    "--token-file",
                    str(state.token_path),
                    "--lab",
                    "--state-dir",
                    str(tmp_path / "agent"),
                    "--netns-prefix",
                    "h3vm-",
                ],
                stdout=logs["agent"],
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        )
        yield {"url": url, "token": token, "procs": procs, "tmp": tmp_path}
    finally:
        for p in reversed(procs):
            stop(p)
        cleanup_devices()


def status(p: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return ApiClient(p["url"], p["token"]).status().model_dump(mode="json")
    except ClientError:
        return None


def host(doc: dict[str, Any] | None) -> dict[str, Any]:
    return next((h for h in (doc or {}).get("hosts", []) if h["name"] == "h3a"), {})


def wait_status(p: dict[str, Any], what: str, cond: Any, timeout: float = 40.0) -> dict[str, Any]:
    seen: list[dict[str, Any] | None] = [None]

    def holds() -> dict[str, Any] | None:
        seen[0] = doc = status(p)
        return host(doc) if doc is not None and cond(host(doc)) else None

    try:
        return wait_until(holds, timeout, what)
    except WaitTimeout as err:
        logs = "".join((p["tmp"] / f"{n}.log").read_text(errors="replace")[-3000:] for n in ("controller", "agent"))
        raise AssertionError(f"{err}; status {seen[0]}\n{logs}") from None


def test_agent_serves_the_controllers_desired_set(platform: dict[str, Any]) -> None:
    want = {"click.g0", "h3bl", "h3ids", "h3cls"}
    h = wait_status(
        platform,
        "all ready",
        lambda h: (
            h.get("alive")
            and {i["id"] for i in h["instances"]} == want
            and all(i["state"] == "ready" for i in h["instances"])
        ),
    )
    assert h["load"]["cores"] >= 1 and h["load"]["memory_total"] > 0
    assert h3_namespaces() == ["h3vm-h3a-h3cls", "h3vm-h3a-h3ids"]
    assert exchange(tap_name("h3ids"), 3, tcp_frame(80)) == 3
    assert exchange(tap_name("h3bl"), 0x804, tcp_frame(25)) == 0x804
    wait_status(
        platform,
        "packets counted",
        lambda h: all(i["packets"] >= 1 for i in h["instances"] if i["id"] in ("h3ids", "h3bl")),
    )
    assert stop(platform["procs"][1]) == 0  # the agent, on SIGTERM, stops its instances
    assert h3_namespaces() == [] and h3_links() == []
