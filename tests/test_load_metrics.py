"""Measured load (controller/load.py, agent/usage.py) and the metrics it feeds
(controller/metrics.py): rates over the window, restarts that reset counters,
CPU of a real process session, and the Prometheus text a scrape gets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from backends.platform.agent.usage import cpu_seconds, stats_bytes
from backends.platform.controller.load import LoadBook
from backends.platform.controller.metrics import Metrics
from backends.platform.controller.protocol import (
    Heartbeat,
    HostLoad,
    HostStatus,
    InstanceReport,
    InstanceStatus,
    StatusAnswer,
    SwitchStatus,
)
from backends.platform.wait import wait_until


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def beat(packets: int, nbytes: int, cpu: float, modules: dict[str, int] | None = None) -> Heartbeat:
    r = InstanceReport(id="click.g0", state="ready", packets=packets, bytes=nbytes, cpu_seconds=cpu)
    r.modules = modules or {}
    return Heartbeat(instances=[r])


def test_rates_over_the_window_and_a_restart_starts_afresh() -> None:
    clock = Clock()
    book = LoadBook(clock, window=10.0)
    for i in range(6):  # 100 packets, 1000 bytes, 0.1 CPU s per second
        book.record("m1", beat(100 * i, 1000 * i, 0.1 * i, {"fw": 50 * i}))
        clock.t += 1.0
    load = book.load("m1", "click.g0")
    assert load is not None and load.window == 5.0
    assert (load.packets_per_second, load.bytes_per_second, load.cpu) == (100.0, 1000.0, 0.1)
    assert len(load.history) == 6 and load.history[-1][1:] == [500, 5000, 0.5]
    assert book.load("m1", "fw").packets_per_second == 50.0  # a Click module instance, packets only
    for _ in range(20):  # old samples leave the window
        book.record("m1", beat(500, 5000, 0.5))
        clock.t += 1.0
    assert book.load("m1", "click.g0").window <= 10.0
    book.record("m1", beat(7, 70, 0.01))  # restarted: counters went down
    load = book.load("m1", "click.g0")
    assert load.window == 0 and load.packets_per_second == 0 and len(load.history) == 1
    book.record("m1", Heartbeat(instances=[]))  # gone from the host
    assert book.latest("m1", "click.g0") is None


def test_cpu_of_a_real_session_and_bytes_of_stats_files(tmp_path: Path) -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ntime.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", burn], start_new_session=True)
    try:
        used = wait_until(lambda: (c := cpu_seconds(proc.pid)) >= 0.3 and c, 30, "the child to burn 0.3 s of CPU")
        assert used < 5
        assert cpu_seconds(None) == 0.0 and cpu_seconds(2**22 + 17) == 0.0  # no such session
    finally:
        proc.kill()
        proc.wait(10)
    f = tmp_path / "stats.json"
    f.write_text(json.dumps({"packets": 3, "bytes": 180}))
    assert stats_bytes(f) == 180
    f.write_text(json.dumps({"devices": {"a": {"rx_bytes": 10}, "b": {"rx_bytes": 5, "open": True}}}))
    assert stats_bytes(f) == 15
    f.write_text("not json")
    assert stats_bytes(f) == 0 and stats_bytes(None) == 0 and stats_bytes(tmp_path / "none") == 0


def test_metrics_text_from_status_and_events() -> None:
    clock = Clock()
    book = LoadBook(clock)
    book.record("m1", beat(10, 1500, 0.25))
    inst = InstanceStatus(id="click.g0", kind="click", wanted=True, state="ready", packets=10, restarts=1)
    lost = InstanceStatus(id="ids#2", kind="process", wanted=True, state="lost", packets=0, restarts=0)
    st = StatusAnswer(
        site="s",
        generation=1,
        switches=[SwitchStatus(name="s0", dpid=1, connected=True, rules=90, installed=100, tcam=1000)],
        unknown_switches=[],
        hosts=[
            HostStatus(name="m1", alive=True, last_seen=1.0, load=HostLoad(load1=0.5, cores=4), instances=[inst]),
            HostStatus(name="m2", alive=False, last_seen=None, load=None, instances=[lost], drained=True),
        ],
        applying=False,
    )
    m = Metrics(lambda: st, book)
    m.applied("ok", 0.3)
    m.applied("failed", 2.0)
    m.relocated("failover", "ok", 1.5)
    got = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        for s in fam.samples:
            got[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert got[("fsc_switch_tcam_use_ratio", (("switch", "s0"),))] == 0.1
    assert got[("fsc_host_alive", (("host", "m2"),))] == 0 and got[("fsc_host_drained", (("host", "m2"),))] == 1
    assert got[("fsc_host_load1", (("host", "m1"),))] == 0.5
    lab = (("host", "m1"), ("instance", "click.g0"), ("kind", "click"))
    assert got[("fsc_instance_packets_total", lab)] == 10
    assert got[("fsc_instance_bytes_total", lab)] == 1500 and got[("fsc_instance_cpu_seconds_total", lab)] == 0.25
    assert got[("fsc_instance_state", (*lab, ("state", "ready")))] == 1
    lost_lab = (("host", "m2"), ("instance", "ids#2"), ("kind", "process"))
    assert got[("fsc_instance_state", (*lost_lab, ("state", "lost")))] == 1
    assert got[("fsc_instance_state", (*lost_lab, ("state", "ready")))] == 0
    assert got[("fsc_applies_total", (("result", "ok"),))] == 1 and got[("fsc_applies_total", (("result", "failed"),))]
    assert got[("fsc_relocation_duration_seconds_sum", (("kind", "failover"), ("result", "ok")))] == 1.5
    assert got[("fsc_generation", ())] == 1 and got[("fsc_status_up", ())] == 1

    def broken() -> StatusAnswer:
        raise RuntimeError("switch hangs")

    text = Metrics(broken).render().decode()
    assert "fsc_status_up 0.0" in text and "fsc_applies_total" in text


def test_the_grafana_dashboard_uses_only_metrics_the_controller_exposes() -> None:
    import re

    doc = json.loads((Path(__file__).resolve().parents[1] / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"\bfsc_[a-z0-9_]+", e)}
    clock = Clock()
    book = LoadBook(clock)
    book.record("m1", beat(1, 1, 0.1))
    inst = InstanceStatus(id="click.g0", kind="click", wanted=True, state="ready", packets=1, restarts=0)
    st = StatusAnswer(
        site="s",
        generation=0,
        switches=[SwitchStatus(name="s0", dpid=1, connected=True, rules=1, installed=1, tcam=10)],
        unknown_switches=[],
        hosts=[HostStatus(name="m1", alive=True, last_seen=1.0, load=HostLoad(), instances=[inst])],
        applying=False,
    )
    m = Metrics(lambda: st, book)
    m.applied("ok", 0.1)
    m.relocated("failover", "ok", 0.1)
    exposed = {s.name for fam in text_string_to_metric_families(m.render().decode()) for s in fam.samples}
    assert used and used <= exposed, used - exposed
    assert len(doc["panels"]) >= 10
