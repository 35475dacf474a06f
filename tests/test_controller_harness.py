"""Helpers (no tests) for the controller/apply tests: a private OVS whose
bridges are the site's switches, connected over a veth to a real `fsc
controller` subprocess; the CLI as a subprocess; real `fsc agent`s with a
stand-in `click`. Names start with ``h2``."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from backends.platform.controller.client import ApiClient, ClientError
from backends.platform.lab.ovs import PrivateOvs, ovs_available
from backends.platform.wait import wait_until

ROOT = Path(__file__).resolve().parents[1]
FSC = str(ROOT / ".venv" / "bin" / "fsc")
NEEDS_OVS = [  # a module's pytestmark: these tests run real OVS bridges
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or ovs_available() is not None, reason="needs root and OVS"),
]
TWO = (ROOT / "examples" / "two_switch.fs").read_text()  # the site most controller tests apply
SWITCHES = {"north": 0xA, "south": 0xB}  # its switches' datapath ids
_n = itertools.count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fsc(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FSC, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})}
    )


class Controller:
    """`fsc controller` as a subprocess (so it can be SIGKILLed)."""

    def __init__(self, state: Path, of_host: str, args: tuple[str, ...] = ()) -> None:
        self.state = state
        self.of_host = of_host
        self.args = args
        self.of_port = free_port()
        self.http_port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.log = state.parent / f"{state.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def token_file(self) -> Path:
        return self.state / "token"

    def start(self, env: dict[str, str] | None = None) -> None:
        self.log_f = open(self.log, "a")
        self.proc = subprocess.Popen(
            [
                FSC,
                "controller",
                "--listen",
                f"127.0.0.1:{self.http_port}",
                "--openflow",
                f"{self.of_host}:{self.of_port}",
                "--state",
                str(self.state),
                *self.args,
            ],
            stdout=self.log_f,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"controller exited: {self.log.read_text()[-2000:]}")
            if not self.token_file.exists():
                return False
            try:
                self.api.deployed()
                return True
            except ClientError:
                return False

        wait_until(up, 30, f"the controller to answer (log: {self.log})")

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()

    @property
    def api(self) -> ApiClient:
        """The API client, as `fsc plan/apply/status` and the agents use it."""
        return ApiClient(self.url, self.token)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str) -> Any:
        """``/v1/status`` or ``/v1/deployed`` as JSON (through the API client)."""
        answer = {"/v1/status": self.api.status, "/v1/deployed": self.api.deployed}[path]()
        return answer.model_dump(mode="json", by_alias=True)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
        self.log_f.close()

    def stop(self) -> int | None:
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        code = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                code = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if hasattr(self, "log_f") and not self.log_f.closed:
            self.log_f.close()
        return code

    def apply_args(self, site: Path, *extra: str) -> list[str]:
        """The arguments of `fsc apply SITE --yes --drain 0` (no drain wait) against
        this controller, ``extra`` among them."""
        return [
            "apply",
            str(site),
            "--yes",
            *extra,
            "--drain",
            "0",
            "--controller",
            self.url,
            "--token-file",
            str(self.token_file),
        ]

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return fsc(*args, "--controller", self.url, "--token-file", str(self.token_file), timeout=timeout)


class Lab:
    """A private OVS in namespace ``h2-...``, a veth to it, one bridge per switch."""

    def __init__(self, workdir: Path) -> None:
        k = next(_n)
        self.netns = f"h2-{os.getpid()}-{k}"
        self.veth = f"h2v{os.getpid() % 10000}x{k}"
        third = (os.getpid() + k) % 250 + 1
        self.host_ip, self.ns_ip = f"10.213.{third}.1", f"10.213.{third}.2"
        self.ovs = PrivateOvs(workdir / "ovs", netns=self.netns)
        self.bridges: dict[str, int] = {}

    def start(self) -> None:
        self.ovs.start()
        cmds = [
            f"ip link add {self.veth} type veth peer name h2peer netns {self.netns}",
            f"ip addr add {self.host_ip}/30 dev {self.veth}",
            f"ip link set {self.veth} up",
            f"ip -n {self.netns} addr add {self.ns_ip}/30 dev h2peer",
            f"ip -n {self.netns} link set h2peer up",
        ]
        for c in cmds:
            subprocess.run(c.split(), check=True, capture_output=True)
        self.ovs.add_bridge("h2ref", dpid=0xFFFF)

    def stop(self) -> None:
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
        self.ovs.stop()

    def add_switch(self, name: str, dpid: int, ctl: Controller) -> None:
        self.ovs.add_bridge(name, dpid=dpid)
        self.ovs.vsctl("set", "bridge", name, "protocols=OpenFlow13,OpenFlow14")
        self.ovs.vsctl("set-controller", name, f"tcp:{self.host_ip}:{ctl.of_port}")
        self.ovs.vsctl("set", "controller", name, "max_backoff=1000")  # reconnect fast after a restart
        self.bridges[name] = dpid

    def flows(self, bridge: str) -> list[str]:
        return sorted(self.ovs.dump_flows(bridge))

    def reference(self, ofctl_text: str, tmp: Path, groups_text: str = "") -> list[str]:
        """What OVS shows after loading ``ofctl_text`` (after ``groups_text``,
        the groups its flows use) into an empty bridge."""
        f = tmp / "h2ref.ofctl"
        f.write_text(ofctl_text)
        self.ovs.ofctl("del-flows", bridge="h2ref")
        self.ovs.ofctl("del-groups", bridge="h2ref")
        if groups_text.strip():
            g = tmp / "h2ref.groups"
            g.write_text(groups_text)
            self.ovs.ofctl("--bundle", "add-groups", str(g), bridge="h2ref")
        if ofctl_text.strip():
            self.ovs.ofctl("--bundle", "add-flows", str(f), bridge="h2ref")
        return sorted(self.ovs.dump_flows("h2ref"))

    def reference_of(self, files: dict[str, str], switch: str, tmp: Path) -> list[str]:
        """:meth:`reference` of a compiled switch's flows and groups."""
        return self.reference(files[f"openflow/{switch}.ofctl"], tmp, files.get(f"openflow/{switch}.groups", ""))

    def wait_connected(self, ctl: Controller, names: list[str], timeout: float = 20) -> None:
        want = {self.bridges[n] for n in names}

        def connected() -> bool:
            st = ctl.api.status()
            return want <= {s.dpid for s in st.switches if s.connected} | set(st.unknown_switches)

        wait_until(connected, timeout, f"switches {names} to connect")


@contextmanager
def lab_with_controller(
    tmp: Path, switches: dict[str, int], env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[tuple[Lab, Controller]]:
    lab = Lab(tmp)
    ctl = Controller(tmp / "state", "0.0.0.0", args)
    try:
        lab.start()
        ctl.of_host = lab.host_ip
        ctl.start(env)
        for name, dpid in switches.items():
            lab.add_switch(name, dpid, ctl)
        lab.wait_connected(ctl, list(switches))
        yield lab, ctl
    finally:
        ctl.stop()
        lab.stop()


def compile_files(site: Path, out: Path, generation: int = 0, previous: Path | None = None) -> dict[str, str]:
    """What `fsc compile SITE -o OUT --generation G [--previous P]` writes (in-process: faster)."""
    from backends.emit.output import render
    from backends.emit.write import write
    from compiler.pipeline import compile_site
    from compiler.placement.place import Placement
    from fslang.api import load

    result = load(site)
    assert result.site is not None, [d.message for d in result.diagnostics]
    prev = Placement.from_json((previous / "placement.json").read_text()) if previous is not None else None
    compiled = compile_site(result.site, prev, False, generation=generation)
    assert compiled.ok, [d.message for d in compiled.diagnostics]
    files = render(compiled)
    write(out, files)
    return files


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip().startswith("{")]


def wait_for(pred: Any, timeout: float = 20.0, what: str = "condition") -> None:
    """``wait_until`` with the argument order the apply tests use."""
    wait_until(pred, timeout, what)


STANDIN_CLICK = """#!{python}
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
if pathlib.Path({crash_flag!r}).exists():
    sys.exit("h2 stand-in click: crashing on purpose")
pathlib.Path(sys.argv[1] + ".h2ran").write_text("ran")
while True:
    time.sleep(1)
"""


@contextmanager
def real_agent(tmp: Path, host: str, ctl: Controller) -> Iterator[subprocess.Popen[bytes]]:
    """`fsc agent --host HOST --lab` against the controller, with a stand-in
    `click` on the PATH (Click is not packaged here; the agent's runner takes
    any `click` binary and counts it ready once it has run for a second).
    While the file ``tmp/h2crash-HOST`` exists, the stand-in exits at once."""
    import sys

    bin_dir = tmp / f"h2bin-{host}"
    bin_dir.mkdir(exist_ok=True)
    click = bin_dir / "click"
    click.write_text(STANDIN_CLICK.format(python=sys.executable, crash_flag=str(tmp / f"h2crash-{host}")))
    click.chmod(0o755)
    log = open(tmp / f"agent-{host}.log", "wb")
    proc = subprocess.Popen(
        [
            FSC,
            "agent",
            "--host",
            host,
            "--controller",
            ctl.url,
            "--token-file",
            str(ctl.token_file),
            "--lab",
            "--state-dir",
            str(tmp / f"agent-{host}"),
            "--netns-prefix",
            "h2vm-",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()
