"""`fsc lab down` and `fsc lab exec`: every refusal is one clear line and an
exit code that the LabError's class decides (2: the request is wrong; 3: the
lab is not there, not removable, or this is not root), never its text.

The labs here are records in a private lab root (FSC_LAB_ROOT) plus, where a
node must exist, one real network namespace; nothing touches other labs.
Needs root (CI is root), except the not-root case."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backends.platform.lab import nodes
from backends.platform.lab.state import LabError, LabState, LabUsageError, NoSuchLab, netns_name
from fslang.cli import app

ROOT = Path(__file__).resolve().parents[1]
FSC = [sys.executable, "-m", "fslang.cli"]
LAB = f"tc{os.getpid() % 100000}"

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="fsc lab needs root (CI runs as root)")


@pytest.fixture
def lab_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private lab root, for this process and the `fsc` it runs."""
    from backends.platform.lab import state

    root = tmp_path / "labs"
    root.mkdir()
    monkeypatch.setattr(state, "LAB_ROOT", root)
    monkeypatch.setenv("FSC_LAB_ROOT", str(root))
    return root


def fsc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FSC, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`fsc ARGS` in this process (the same app; quicker than a new interpreter)."""
    r = CliRunner().invoke(app, list(args))
    return subprocess.CompletedProcess(list(args), r.exit_code, r.stdout, r.stderr)


def refused(cp: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert (cp.returncode, cp.stdout) == (code, ""), (cp.returncode, cp.stdout, cp.stderr)
    assert cp.stderr.startswith("fsc lab: ") and words in cp.stderr and "Traceback" not in cp.stderr, cp.stderr
    assert cp.stderr.count("\n") == 1, cp.stderr  # one line


def record(name: str, **netns: str) -> LabState:
    st = LabState(name, site="s", phase="up", mode="static", netns=dict(netns))
    st.save()
    return st


@root_only
def test_down_and_exec_with_no_lab(lab_root: Path) -> None:
    refused(fsc("lab", "down"), 3, "no lab is up; start one with `fsc lab up SITE.fs`")  # the real entry point
    refused(cli("lab", "exec", "lan", "--", "true"), 3, "no lab is up")
    refused(cli("lab", "down", "--name", "nosuch"), 3, "no lab 'nosuch' is up")
    refused(cli("lab", "exec", "--name", "nosuch", "lan"), 3, "no lab 'nosuch' is up")


@root_only
def test_usage_errors_exit_2(lab_root: Path) -> None:
    record("ca")
    record("cb")
    refused(cli("lab", "down"), 2, "several labs are up (ca, cb): say which with --name")
    refused(cli("lab", "exec", "lan", "--", "true"), 2, "several labs are up (ca, cb)")
    refused(cli("lab", "down", "--name", "Bad-Name"), 2, "bad lab name 'Bad-Name'")
    refused(cli("lab", "exec", "--name", "x" * 30, "lan"), 2, "bad lab name")
    refused(cli("lab", "exec", "--name", "ca", "nosuch", "--", "true"), 2, "lab ca has no node 'nosuch'")
    refused(cli("lab", "up", str(ROOT / "examples" / "campus.fs"), "--name", "-x"), 2, "bad lab name '-x'")
    assert sorted(p.name for p in lab_root.iterdir()) == ["ca", "cb"]  # nothing was touched


@root_only
def test_exec_in_a_node_then_down(lab_root: Path) -> None:
    ns = netns_name(LAB, "n1")
    record(LAB, n1=ns, n2=netns_name(LAB, "n2"))  # n2 is recorded but its namespace is gone
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    nodes.create_netns(ns)
    try:
        cp = fsc("lab", "exec", "--name", LAB, "n1", "--", "ip", "-o", "link")
        assert cp.returncode == 0 and "lo:" in cp.stdout and "eth" not in cp.stdout, cp  # inside n1
        assert fsc("lab", "exec", "n1", "--", "sh", "-c", "exit 7").returncode == 7  # the only lab
        r, w = os.pipe()  # an inherited descriptor (as `flock` leaves one) does not reach CMD
        try:
            cp = subprocess.run(
                [*FSC, "lab", "exec", "n1", "--", "ls", "/proc/self/fd"],
                capture_output=True,
                text=True,
                cwd=ROOT,
                pass_fds=(r, w),
                timeout=60,
            )
        finally:
            os.close(r)
            os.close(w)
        assert cp.returncode == 0 and sorted(cp.stdout.split()) == ["0", "1", "2", "3"], cp  # 3: ls's own
        refused(cli("lab", "exec", "n1", "--", "no-such-command-h5"), 2, "no command 'no-such-command-h5'")
        gone = f"the namespace of node n2 ({netns_name(LAB, 'n2')}) is gone"
        refused(cli("lab", "exec", "n2", "--", "true"), 3, gone)
        cp = fsc("lab", "down")
        assert (cp.returncode, cp.stdout) == (0, f"lab {LAB} is down; nothing left behind\n"), cp
        assert ns not in nodes.netns_list() and not (lab_root / LAB).exists()
        refused(cli("lab", "down", "--name", LAB), 3, f"no lab '{LAB}' is up")  # a second down: nothing there
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@root_only
def test_down_of_a_lab_with_an_unreadable_record_still_cleans_up(lab_root: Path) -> None:
    (lab_root / LAB).mkdir()
    (lab_root / LAB / "state.json").write_text("{not json")
    ns = netns_name(LAB, "n1")
    nodes.create_netns(ns)
    try:
        cp = fsc("lab", "down", "--name", LAB)
        assert (cp.returncode, cp.stdout) == (0, f"lab {LAB} is down; nothing left behind\n"), cp
        assert ns not in nodes.netns_list() and not (lab_root / LAB).exists()
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_not_root_says_so() -> None:
    """A user namespace without a uid map: not root (euid 65534)."""
    for args in (["down"], ["exec", "lan", "--", "true"]):
        cp = subprocess.run(["unshare", "--user", *FSC, "lab", *args], capture_output=True, text=True, cwd=ROOT)
        refused(cp, 3, "fsc lab needs root")


# -- the exit code is the class's, whatever the message says (in-process, through the real CLI) --


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (LabUsageError("the lab exploded"), 2),  # a usage error whose text sounds like a failure
        (LabError("several labs are up (a, b): say which with --name"), 3),  # a failure worded like usage
        (NoSuchLab("bad lab name"), 3),
    ],
)
def test_exit_code_comes_from_the_class(
    as_root: None, monkeypatch: pytest.MonkeyPatch, error: LabError, code: int
) -> None:
    from backends.platform.lab import lab

    def boom(name: str | None) -> str:
        raise error

    monkeypatch.setattr(lab, "resolve", boom)
    monkeypatch.setattr(lab, "exec_argv", lambda name, node, cmd: boom(name))
    for args in (["lab", "down"], ["lab", "exec", "n1"]):
        r = CliRunner().invoke(app, args)
        assert (r.exit_code, r.stdout) == (code, ""), (r.exit_code, r.output)
        assert r.stderr == f"fsc lab: {error}\n"


def test_down_that_leaves_something_exits_3(as_root: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from backends.platform.lab import lab

    monkeypatch.setattr(lab, "resolve", lambda name: "ca")
    monkeypatch.setattr(lab, "down", lambda name: ["namespaces still there: fsclab-ca-x"])
    r = CliRunner().invoke(app, ["lab", "down"])
    assert r.exit_code == 3 and r.stdout == ""
    assert r.stderr == "fsc lab: removed what it could of lab ca; left over: namespaces still there: fsclab-ca-x\n"
