"""The apply orchestration against switches that misbehave in ways a real OVS
cannot be made to (it never silently keeps something other than what it
accepted): a table that does not read back as sent, a switch that drops out
mid-update. ``TableSwitch`` is an in-memory flow table with the same three
calls the os-ken app offers; the real switch path is in test_apply_*.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_controller_harness import TWO, compile_files

from backends.platform.controller.ofapp import SwitchError
from backends.platform.controller.plan import Op, Tables, apply_ops, same_tables, switch_tables
from backends.platform.controller.protocol import APPLY_EVENT, ApplyRequest, event_line
from backends.platform.controller.service import Controller
from backends.platform.controller.state import StateDir


class TableSwitch:
    """Switches as dicts of flows; ``corrupt``/``drop`` make one dpid misbehave once."""

    def __init__(self, dpids: list[int]) -> None:
        self.tables: dict[int, Tables] = {d: {} for d in dpids}
        self.on_connect: Any = None
        self.corrupt: int | None = None  # after the next push, this switch loses a rule
        self.drop: int | None = None  # the next push to this switch fails: connection lost
        self.pushes: list[tuple[int, int]] = []

    def connected(self) -> list[int]:
        return sorted(self.tables)

    def push(self, dpid: int, ops: list[Op], bundle: bool = True) -> None:
        if self.drop == dpid:
            self.drop = None
            raise SwitchError(f"switch {dpid:#x}: the connection is closed")
        self.tables[dpid] = apply_ops(self.tables[dpid], ops)
        self.pushes.append((dpid, len(ops)))
        if self.corrupt == dpid and self.tables[dpid]:
            self.corrupt = None
            self.tables[dpid].pop(sorted(self.tables[dpid], key=repr)[-1])

    def read_tables(self, dpid: int, timeout: float = 30.0) -> Tables:
        return dict(self.tables[dpid])


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], dict[str, str]]:
    d = tmp_path_factory.mktemp("h2svc")
    (d / "a.fs").write_text(TWO)
    (d / "b.fs").write_text(TWO.replace("10.70.99.0/24", "10.70.98.0/24"))
    a = compile_files(d / "a.fs", d / "a", generation=0)
    b = compile_files(d / "b.fs", d / "b", generation=1, previous=d / "a")
    return a, b


def _run(ctl: Controller, files: dict[str, str]) -> list[dict[str, Any]]:
    """The apply's events as the HTTP answer carries them (and the client reads them back)."""
    lines = [
        event_line(e) for e in ctl.apply(ApplyRequest(site="two_switch", files=files, drain_seconds=0, ready_timeout=5))
    ]
    assert all(APPLY_EVENT.validate_json(line) is not None for line in lines)
    return [json.loads(line) for line in lines]


def _ready_agents(ctl: Controller, files: dict[str, str]) -> None:
    """Report every wanted instance ready (as an agent would) before the apply waits."""
    from backends.platform.controller.instances import host_specs
    from backends.platform.controller.protocol import Heartbeat, InstanceReport

    for host, specs in host_specs(files).items():
        ctl.agents.heartbeat(
            host, Heartbeat(instances=[InstanceReport(id=s.id, digest=s.digest, state="ready") for s in specs]), None
        )


def _deploy(tmp_path: Path, a: dict[str, str]) -> tuple[Controller, TableSwitch]:
    sw = TableSwitch([0xA, 0xB])
    ctl = Controller(StateDir(tmp_path / "state"), sw)
    _ready_agents(ctl, a)
    assert _run(ctl, a)[-1]["result"] == "ok"
    return ctl, sw


def test_a_table_that_reads_back_wrong_fails_and_rolls_back(
    tmp_path: Path, sites: tuple[dict[str, str], dict[str, str]]
) -> None:
    a, b = sites
    ctl, sw = _deploy(tmp_path, a)
    want_a = switch_tables(a)
    _ready_agents(ctl, b)
    sw.corrupt = 0xB
    evs = _run(ctl, b)
    last = evs[-1]
    assert last["result"] == "failed" and last["rolled_back"] is True
    assert "switch south (0xb) does not hold what was sent: missing on the switch" in last["error"]
    for name, (dpid, tables) in want_a.items():
        assert same_tables(tables, sw.tables[dpid]) == [], name
    assert ctl.deployed().generation == 0 and ctl.state.journal() is None


def test_a_switch_lost_during_the_flip_rolls_back_the_others(
    tmp_path: Path, sites: tuple[dict[str, str], dict[str, str]]
) -> None:
    a, b = sites
    ctl, sw = _deploy(tmp_path, a)
    _ready_agents(ctl, b)
    # install reaches both switches; the drop hits south's flip (its second push)
    real_push = sw.push
    count = {"south": 0}

    def push(dpid: int, ops: list[Op], bundle: bool = True) -> None:
        if dpid == 0xB:
            count["south"] += 1
            if count["south"] == 2:
                sw.drop = 0xB
        real_push(dpid, ops, bundle)

    sw.push = push  # type: ignore[method-assign]
    evs = _run(ctl, b)
    assert [e["switch"] for e in evs if e.get("phase") == "flip"] == ["north"]
    assert evs[-1]["result"] == "failed" and "connection is closed" in evs[-1]["error"]
    for name, (dpid, tables) in switch_tables(a).items():
        assert same_tables(tables, sw.tables[dpid]) == [], name
    # the same update, retried, goes through
    _ready_agents(ctl, b)
    assert _run(ctl, b)[-1]["result"] == "ok"
    for name, (dpid, tables) in switch_tables(b).items():
        assert same_tables(tables, sw.tables[dpid]) == [], name


def test_busy_and_offline_are_refused_before_touching_anything(
    tmp_path: Path, sites: tuple[dict[str, str], dict[str, str]]
) -> None:
    a, b = sites
    ctl, sw = _deploy(tmp_path, a)
    before = {d: dict(t) for d, t in sw.tables.items()}
    del sw.tables[0xB]
    last = _run(ctl, b)[-1]
    assert last["result"] == "failed" and "south (0xb)" in last["error"] and "set-controller" in last["error"]
    sw.tables[0xB] = before[0xB]
    ctl._applying = True
    assert _run(ctl, b)[-1]["error"].startswith("another apply is in progress")
    ctl._applying = False
    assert sw.tables == before


def test_same_generation_update_is_done_but_flagged(
    tmp_path: Path, sites: tuple[dict[str, str], dict[str, str]]
) -> None:
    a, _ = sites
    ctl, sw = _deploy(tmp_path, a)
    d = tmp_path / "c"
    d.mkdir()
    (d / "c.fs").write_text(TWO.replace("10.70.99.0/24", "10.70.97.0/24"))
    c = compile_files(d / "c.fs", d / "out", generation=0)  # same generation as deployed
    _ready_agents(ctl, c)
    evs = _run(ctl, c)
    assert "replaced in place" in evs[0]["warning"] and evs[-1]["result"] == "ok"
    for name, (dpid, tables) in switch_tables(c).items():
        assert same_tables(tables, sw.tables[dpid]) == [], name


class CountingSwitch(TableSwitch):
    """A TableSwitch that also answers per-table counts and connection epochs
    (the cheap checks of the real switch object), and counts full reads."""

    def __init__(self, dpids: list[int]) -> None:
        super().__init__(dpids)
        self.full_reads: list[int] = []
        self.epochs = dict.fromkeys(dpids, 1)

    def read_tables(self, dpid: int, timeout: float = 30.0) -> Tables:
        self.full_reads.append(dpid)
        return super().read_tables(dpid, timeout)

    def table_counts(self, dpid: int, timeout: float = 30.0) -> dict[int, int]:
        out: dict[int, int] = {}
        for table_id, _p, _m in self.tables[dpid]:
            out[table_id] = out.get(table_id, 0) + 1
        return out

    def epoch(self, dpid: int) -> int | None:
        return self.epochs.get(dpid)


def test_the_pre_apply_reconcile_reads_only_switches_that_may_have_diverged(
    tmp_path: Path, sites: tuple[dict[str, str], dict[str, str]]
) -> None:
    a, b = sites
    sw = CountingSwitch([0xA, 0xB])
    ctl = Controller(StateDir(tmp_path / "state"), sw)
    _ready_agents(ctl, a)
    assert _run(ctl, a)[-1]["result"] == "ok"
    # a rule of north deleted behind the controller's back; south reconnected (it may have restarted)
    sw.tables[0xA].pop(sorted(sw.tables[0xA], key=repr)[0])
    sw.epochs[0xB] = 2
    sw.full_reads.clear()
    _ready_agents(ctl, b)
    evs = _run(ctl, b)
    assert evs[-1]["result"] == "ok" and {"phase": "prepare", "repaired": 1} in evs
    assert {0xA, 0xB} <= set(sw.full_reads)  # both read before the update: counts differ / a new connection
    for name, (dpid, tables) in switch_tables(b).items():
        assert same_tables(tables, sw.tables[dpid]) == [], name
    # nothing diverged since: the next update reads neither switch before it starts
    sw.full_reads.clear()
    _ready_agents(ctl, a)
    evs = _run(ctl, a)
    assert evs[-1]["result"] == "ok" and not any(e.get("phase") == "prepare" for e in evs)
    plan = next(e for e in evs if e.get("phase") == "plan")
    reads_by_phases = sum(1 for s in plan["switches"].values() for k in ("install", "flip", "cleanup") if s[k])
    assert len(sw.full_reads) <= reads_by_phases  # read-backs of the phases only, none before
    for name, (dpid, tables) in switch_tables(a).items():
        assert same_tables(tables, sw.tables[dpid]) == [], name


def test_flows_the_switch_keeps_by_itself_do_not_fail_the_counts(
    tmp_path: Path, sites: tuple[dict[str, str], dict[str, str]]
) -> None:
    """A switch's table stats may count flows a flow dump does not show (OVS's
    hidden in-band flows): counts are compared as they were when last checked."""
    a, b = sites
    sw = CountingSwitch([0xA, 0xB])
    real = sw.table_counts

    def counts(dpid: int, timeout: float = 30.0) -> dict[int, int]:
        out = real(dpid, timeout)
        out[0] = out.get(0, 0) + 3  # three hidden flows in table 0
        return out

    sw.table_counts = counts  # type: ignore[method-assign]
    ctl = Controller(StateDir(tmp_path / "state"), sw)
    for files in (a, b, a):
        _ready_agents(ctl, files)
        assert _run(ctl, files)[-1]["result"] == "ok"
    sw.full_reads.clear()
    _ready_agents(ctl, b)
    evs = _run(ctl, b)
    plan = next(e for e in evs if e.get("phase") == "plan")
    assert evs[-1]["result"] == "ok" and len(sw.full_reads) <= sum(
        1 for s in plan["switches"].values() for k in ("install", "flip", "cleanup") if s[k]
    )
