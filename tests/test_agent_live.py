"""A real `fsc agent` process against a real HTTP heartbeat endpoint, in lab mode:
instances come up (vm -> a network namespace with the reference behaviour,
process -> supervised, program missing -> reference behaviour), real frames
go in with tag T and come back with tag T and the module's output in PCP,
counters rise, a killed process is restarted, a crashing one is given up,
the agent keeps its instances without a controller, and unwanted instances
and a shut-down agent leave no device or namespace behind.

The endpoint is tests/test_agent_harness.py's (temporary, until the
controller's HTTP API runs in a test); the Click instance runs a stand-in
`click` on the PATH (the runner's "binary present" path)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.emit.vm.generate import tap_name
from backends.platform.agent.client import ControllerClient, Unreachable
from backends.platform.controller.protocol import Heartbeat
from backends.platform.wait import wait_until
from compiler.check.frontend import run
from compiler.pipeline import compile_site
from tests.conftest import ROOT
from tests.test_agent_harness import (
    SITE,
    TOKEN,
    Endpoint,
    cleanup_devices,
    exchange,
    h3_links,
    h3_namespaces,
    site_files,
    spec,
    tcp_frame,
)

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("h3_devices")]  # they share the h3 names and devices
HOST = "h3a"
STANDIN_CLICK = """#!{python}
import pathlib, signal, sys
conf = pathlib.Path(sys.argv[1])
(conf.parent / "standin-ran").write_text(conf.read_text())
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    signal.pause()
"""


class Lab:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.endpoint = Endpoint(HOST)
        self.files = site_files()
        self.state = tmp / "state"
        self.proc: subprocess.Popen[bytes] | None = None

    def specs(self) -> dict[str, dict[str, Any]]:
        f = self.files
        return {
            "click.g0": spec("click.g0", "click", {f"click/{HOST}.click": f[f"click/{HOST}.click"]}),
            "h3bl": spec("h3bl", "process", {"process/h3bl.json": f["process/h3bl.json"]}, SITE),
            "h3ids": spec("h3ids", "vm", {"vm/h3ids.xml": f["vm/h3ids.xml"]}, SITE),
            "h3cls": spec("h3cls", "vm", {"vm/h3cls.xml": f["vm/h3cls.xml"]}, SITE),
        }

    def start_agent(self) -> None:
        bin_dir = self.tmp / "bin"
        bin_dir.mkdir(exist_ok=True)
        click = bin_dir / "click"
        click.write_text(STANDIN_CLICK.format(python=sys.executable))
        click.chmod(0o755)
        token = self.tmp / "token"
        token.write_text(TOKEN + "\n")
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        self.log = open(self.tmp / "agent.log", "wb")
        self.proc = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "fsc"),
                "agent",
                "--host",
                HOST,
                "--controller",
                self.endpoint.url,
                "--token-file",
                str(token),
                "--lab",
                "--state-dir",
                str(self.state),
                "--netns-prefix",
                "h3vm-",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def agent_log(self) -> str:
        return (self.tmp / "agent.log").read_text(errors="replace")

    def stop_agent(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.fail("the agent's live tests need root (network namespaces, veth pairs): run them as root")
    cleanup_devices()
    lab = Lab(tmp_path_factory.mktemp("h3agent"))
    lab.endpoint.set_desired(list(lab.specs().values()))
    lab.start_agent()
    try:
        yield lab
    finally:
        lab.stop_agent()
        lab.endpoint.close()
        # the agent's own instances, should it have died without cleaning up
        for pidfile in (lab.state / "instances").glob("*/pid"):
            try:
                os.killpg(int(pidfile.read_text().split()[0]), signal.SIGKILL)
            except (ValueError, OSError):
                pass
        cleanup_devices()


def ready(ids: set[str]) -> Any:
    return lambda seen: all(seen.get(i, {}).get("state") == "ready" for i in ids)


def test_instances_come_up_ready(lab: Lab) -> None:
    specs = lab.specs()
    seen = lab.endpoint.wait("all instances ready", ready(set(specs)), timeout=40)
    for iid, s in specs.items():
        assert seen[iid]["digest"] == s["digest"], iid
    assert "reference behaviour" in seen["h3ids"]["message"] and "h3vm-h3a-h3ids" in seen["h3ids"]["message"]
    assert "`h3-not-installed` is not installed" in seen["h3bl"]["message"]
    assert h3_namespaces() == ["h3vm-h3a-h3cls", "h3vm-h3a-h3ids"]
    assert set(h3_links()) == {tap_name("h3bl"), tap_name("h3ids"), tap_name("h3cls")}
    conf = lab.state / "instances" / "click.g0" / "standin-ran"
    assert conf.read_text() == lab.files[f"click/{HOST}.click"]  # the `click` on PATH ran the host's config
    load = lab.endpoint.beats[-1]["load"]
    assert load["cores"] >= 1 and load["memory_total"] > load["memory_available"] > 0 and "cpu_busy" in load


def test_frames_get_their_tag_and_output_back(lab: Lab) -> None:
    lab.endpoint.wait("ready", ready({"h3bl", "h3ids", "h3cls"}))
    before = {i: r["packets"] for i, r in lab.endpoint.last().items()}
    assert exchange(tap_name("h3ids"), 3, tcp_frame(80)) == 3  # ids: out (PCP 0)
    assert exchange(tap_name("h3bl"), 0x805, tcp_frame(25)) == 0x805  # generation-1 tag kept
    result = run("h3lab.fs", SITE)
    outputs = compile_site(result.site).site.module("h3cls").outputs
    for port, label in ((80, "web"), (25, "mail"), (443, "else")):
        assert exchange(tap_name("h3cls"), 9, tcp_frame(port)) == (outputs.index(label) << 13) | 9, label
    lab.endpoint.wait(
        "counters",
        lambda s: (
            s["h3ids"]["packets"] >= before["h3ids"] + 1
            and s["h3bl"]["packets"] >= before["h3bl"] + 1
            and s["h3cls"]["packets"] >= before["h3cls"] + 3
        ),
    )
    stats = json.loads((lab.state / "instances" / "h3cls" / "stats.json").read_text())
    assert stats["outputs"]["mail"] >= 1 and stats["outputs"]["web"] >= 1 and stats["type"] == "classify"


def run_pid(lab: Lab, iid: str) -> int:
    """The process id in the agent's record of a running instance."""
    return int(json.loads((lab.state / "instances" / iid / "run.json").read_text())["pid"])


def test_killed_process_is_restarted(lab: Lab) -> None:
    lab.endpoint.wait("ready", ready({"h3bl"}))
    pid = run_pid(lab, "h3bl")
    packets = lab.endpoint.last()["h3bl"]["packets"]
    os.killpg(pid, signal.SIGKILL)
    seen = lab.endpoint.wait("restart", lambda s: s["h3bl"]["restarts"] == 1 and s["h3bl"]["state"] == "ready")
    assert seen["h3bl"]["packets"] >= packets >= 1  # counters carried over
    assert run_pid(lab, "h3bl") != pid
    assert exchange(tap_name("h3bl"), 4, tcp_frame(25)) == 4
    assert "restart 1/5" in lab.agent_log()


def test_crashing_process_is_given_up(lab: Lab) -> None:
    manifest = {
        "instance": "h3gu",
        "module": "h3gu",
        "argv": ["false"],
        "device": tap_name("h3gu"),
        "restart": {"policy": "on-failure", "max_restarts": 2, "backoff_seconds": 0.1},
    }
    specs = lab.specs()
    specs["h3gu"] = spec("h3gu", "process", {"process/h3gu.json": json.dumps(manifest)})
    lab.endpoint.set_desired(list(specs.values()))
    seen = lab.endpoint.wait("give up", lambda s: "gave up" in s.get("h3gu", {}).get("message", ""))
    assert seen["h3gu"]["state"] == "failed" and seen["h3gu"]["restarts"] == 2
    assert "gave up after 2 restarts: exited with status 1" in seen["h3gu"]["message"]
    lab.endpoint.beats_after(len(lab.endpoint.beats), 3)  # the agent went round its loop again, twice at least
    assert lab.endpoint.last()["h3gu"]["restarts"] == 2  # and stays given up


def test_process_environment_and_no_shell(lab: Lab) -> None:
    """An installed program gets its device names in the environment; its argv is run as is."""
    manifest = {
        "instance": "h3env",
        "module": "h3env",
        "device": tap_name("h3env"),
        "argv": ["/bin/sh", "-c", "env | grep ^FSC_ | sort; echo '$HOME stays'; exec sleep 60", "x y"],
        "restart": {"policy": "on-failure", "max_restarts": 1, "backoff_seconds": 0.1},
    }
    specs = lab.specs()
    specs["h3env"] = spec("h3env", "process", {"process/h3env.json": json.dumps(manifest)})
    lab.endpoint.set_desired(list(specs.values()))
    lab.endpoint.wait("h3env ready", ready({"h3env"}))
    log = lab.state / "instances" / "h3env" / "log"
    wait_until(lambda: "stays" in log.read_text(), 10, "the program's output in its log")
    text = log.read_text()
    peer = next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith("FSC_IFACE="))
    assert f"FSC_DEVICE={tap_name('h3env')}" in text and "FSC_INSTANCE=h3env" in text and "$HOME stays" in text
    assert subprocess.run(["ip", "link", "show", "dev", peer], capture_output=True).returncode == 0


def test_replacement_keeps_the_device(lab: Lab) -> None:
    """A new digest for the same id restarts the instance; Click's device (same ifindex) stays."""
    lab.endpoint.wait("ready", ready({"h3ids"}))
    dev = tap_name("h3ids")
    index = Path(f"/sys/class/net/{dev}/ifindex").read_text()
    old_pid = run_pid(lab, "h3ids")
    specs = lab.specs()
    xml = lab.files["vm/h3ids.xml"].replace("</domain>", "<!-- v2 --></domain>")
    specs["h3ids"] = spec("h3ids", "vm", {"vm/h3ids.xml": xml}, SITE)
    lab.endpoint.set_desired(list(specs.values()))
    lab.endpoint.wait(
        "new h3ids", lambda s: s["h3ids"]["digest"] == specs["h3ids"]["digest"] and s["h3ids"]["state"] == "ready"
    )
    assert run_pid(lab, "h3ids") != old_pid
    assert Path(f"/sys/class/net/{dev}/ifindex").read_text() == index
    assert exchange(dev, 3, tcp_frame(80)) == 3


def test_wrong_token_and_unknown_host_say_what_to_do(lab: Lab) -> None:
    beat = Heartbeat()
    with pytest.raises(Unreachable, match="401 unauthorized; pass the controller's token with --token-file"):
        ControllerClient(lab.endpoint.url, HOST, "wrong").heartbeat(beat)
    with pytest.raises(Unreachable, match="404; the deployed site has no host of this name"):
        ControllerClient(lab.endpoint.url, "h3nobody", TOKEN).heartbeat(beat)
    with pytest.raises(Unreachable, match="ConnectionError"):
        ControllerClient("http://127.0.0.1:9", HOST, TOKEN).heartbeat(beat)


def test_instances_keep_running_without_controller(lab: Lab) -> None:
    lab.endpoint.wait("ready", ready({"h3ids"}))
    refused = lab.endpoint.refused
    lab.endpoint.available = False
    try:  # the agent has met its unavailable controller, twice
        wait_until(lambda: lab.endpoint.refused >= refused + 2, 20, "two heartbeats refused")
        assert exchange(tap_name("h3ids"), 6, tcp_frame(80)) == 6
        assert lab.proc is not None and lab.proc.poll() is None
    finally:
        lab.endpoint.available = True
    n = len(lab.endpoint.beats)
    lab.endpoint.wait("heartbeats again", lambda s: len(lab.endpoint.beats) > n + 1, timeout=15)
    assert "instances keep running" in lab.agent_log()


def test_unwanted_instances_leave_nothing(lab: Lab) -> None:
    only = lab.specs()["h3ids"]
    lab.endpoint.set_desired([only])
    lab.endpoint.wait(
        "only h3ids",
        lambda s: set(s) == {"h3ids"} and s["h3ids"]["state"] == "ready" and s["h3ids"]["digest"] == only["digest"],
    )
    assert h3_namespaces() == ["h3vm-h3a-h3ids"] and h3_links() == [tap_name("h3ids")]
    assert exchange(tap_name("h3ids"), 3, tcp_frame(80)) == 3


def test_shutdown_leaves_nothing(lab: Lab) -> None:
    assert lab.stop_agent() == 0, lab.agent_log()
    assert h3_namespaces() == [] and h3_links() == []
    for pidfile in (lab.state / "instances").glob("*/pid"):
        pid = int(pidfile.read_text().split()[0])
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
