"""The per-host power hook (issue 13, item 5): the command lines it builds
(every value quoted for the shell), what it remembers, and the controller
calling it, through a real shell, for a host a drain freed (`--power-off`) and
again when that host is undrained. The drain runs as in tests/test_failover.py
(injected clock, in-memory switch, the real compile function)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from backends.platform.controller.power import PowerHook, PowerHookError, check_template, command_line
from backends.platform.controller.protocol import DrainRequest
from backends.platform.wait import wait_until
from tests.test_failover import _drain, _wait, advance, deployed, site_files  # noqa: F401 (fixtures)


def test_values_are_quoted_for_the_shell() -> None:
    t = "ipmitool -H {host}-bmc chassis power {action}"
    assert command_line(t, "mh1", "off") == "ipmitool -H mh1-bmc chassis power off"
    evil = "h; touch /tmp/pwned"
    line = command_line(t, evil, "on")
    assert shlex.split(line) == ["ipmitool", "-H", f"{evil}-bmc", "chassis", "power", "on"]


def test_bad_templates_are_refused_with_what_to_do() -> None:
    with pytest.raises(PowerHookError, match="unknown placeholder"):
        check_template("wake {mac}")
    with pytest.raises(PowerHookError, match=r"\{host\}"):
        check_template("poweroff")
    assert check_template("echo {host} {action} {{x}}") == "echo {host} {action} {{x}}"


def test_the_hook_remembers_what_it_powered_off(tmp_path: Path) -> None:
    calls: list[str] = []

    def run(line: str) -> tuple[int, str]:
        calls.append(line)
        return (1, "bmc unreachable") if "bad" in line else (0, "")

    hook = PowerHook("pw {host} {action}", tmp_path / "power.json", run)
    assert hook.needed("h1") is None and calls == []  # never powered off: nothing to power on
    assert hook.freed("h1") == (True, "powered off h1 (`pw h1 off`)")
    ok, msg = hook.freed("bad")
    assert not ok and "status 1" in msg and "bmc unreachable" in msg
    assert hook.powered_off() == {"h1"}
    again = PowerHook("pw {host} {action}", tmp_path / "power.json", run)  # a restarted controller
    assert again.powered_off() == {"h1"}
    assert again.needed("h1") == (True, "powered on h1 (`pw h1 on`)")
    assert again.powered_off() == frozenset() and calls[-1] == "pw h1 on"


def test_a_real_shell_runs_the_hook(tmp_path: Path) -> None:
    out = tmp_path / "calls"
    hook = PowerHook(
        f"{shlex.quote(sys.executable)} -c 'import sys; print(*sys.argv[1:])' {{host}} {{action}} >> {out}"
    )
    assert hook.freed("h 2")[0]
    assert out.read_text() == "h 2 off\n"
    assert not PowerHook("exit 3 # {host}").freed("h")[0]


def test_a_drain_with_power_off_calls_the_hook_for_the_freed_host_and_undrain_powers_it_on(
    deployed: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    ctl, sw, agents, mon, clock = deployed
    log = tmp_path / "power.log"
    ctl.power = PowerHook(f"echo {{host}} {{action}} >> {log}", tmp_path / "power.json")
    t, events = _drain(ctl, "m2", DrainRequest(grace=30, idle=1, power_off=True))
    _wait(lambda: ctl.drain is not None and not ctl._applying, "the drain to start")
    assert not log.exists()  # not while old connections may still be served
    advance(clock, mon, agents, 2)
    t.join(10)
    assert events[-1].result == "ok", events[-1]
    wait_until(lambda: log.exists(), 5, "the power hook to run")
    assert log.read_text() == "m2 off\n"
    assert any("powered off m2" in e for e in ctl.events)
    answer = ctl.undrain("m2")
    assert answer is not None and log.read_text() == "m2 off\nm2 on\n"
    assert ctl.undrain("m2") is not None and log.read_text() == "m2 off\nm2 on\n"  # on already: not again


def test_a_drain_with_power_off_but_no_hook_says_the_host_stays_on(deployed: Any) -> None:  # noqa: F811
    ctl, sw, agents, mon, clock = deployed
    t, events = _drain(ctl, "m2", DrainRequest(grace=30, idle=1, power_off=True))
    _wait(lambda: ctl.drain is not None and not ctl._applying, "the drain to start")
    advance(clock, mon, agents, 2)
    t.join(10)
    assert any("m2 stays on: the controller has no power hook" in e for e in ctl.events), ctl.events
