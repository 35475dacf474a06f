"""Prometheus metrics of the controller (``GET /metrics``, docs/platform.md).

Two kinds: event counters and durations the controller records as things
happen (applies, failovers, drains), and the state of the platform read at
scrape time from the same answer as ``fsc status`` (switches, hosts,
instances), so the two never disagree. A registry of its own per controller
(tests run several in one process; nothing leaks into the global one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from backends.platform.controller.protocol import StatusAnswer

LOG = logging.getLogger("fsc.controller.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: Seconds; an apply of an unchanged site is milliseconds, a first deploy of a large site seconds.
_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_STATES = ("starting", "ready", "failed", "stopped", "old version", "unknown", "lost")


class Metrics:
    """The controller's registry: record with :meth:`applied` and
    :meth:`relocated`; :meth:`render` is the body of ``/metrics``."""

    def __init__(self, status: Callable[[], StatusAnswer] | None = None, load: Any = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.applies = Counter(
            "fsc_applies", "Applies carried out, by result (ok, unchanged, failed)", ["result"], registry=self.registry
        )
        self.apply_seconds = Histogram(
            "fsc_apply_duration_seconds",
            "Wall time of an apply in the controller, by result",
            ["result"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.relocations = Counter(
            "fsc_relocations",
            "The platform's own moves (kind: failover or drain), by result",
            ["kind", "result"],
            registry=self.registry,
        )
        self.relocation_seconds = Histogram(
            "fsc_relocation_duration_seconds",
            "Wall time of a failover or drain, from its start to its result",
            ["kind", "result"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        for r in ("ok", "unchanged", "failed"):  # present from the start: rate() needs a first sample
            self.applies.labels(r)
        for k in ("failover", "drain"):
            for r in ("ok", "failed"):
                self.relocations.labels(k, r)
        if status is not None:
            self.registry.register(_StatusCollector(status, load))

    def applied(self, result: str, seconds: float) -> None:
        self.applies.labels(result).inc()
        self.apply_seconds.labels(result).observe(seconds)

    def relocated(self, kind: str, result: str, seconds: float) -> None:
        self.relocations.labels(kind, result).inc()
        self.relocation_seconds.labels(kind, result).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def result_of(last: Any) -> str:
    """``ok``, ``unchanged`` or ``failed`` from the last event of an update."""
    if getattr(last, "result", None) != "ok":
        return "failed"
    return "ok" if getattr(last, "changed", True) else "unchanged"


class _StatusCollector(Collector):
    """Gauges and counters of the platform's state, from ``status()`` at scrape time."""

    def __init__(self, status: Callable[[], StatusAnswer], load: Any = None) -> None:
        self.status = status
        self.load = load  # a load.LoadBook (per-instance bytes and CPU), or None

    def describe(self) -> list[Metric]:
        return []  # unchecked: the families depend on what the site has

    def collect(self) -> Iterator[Metric]:
        try:
            st = self.status()
        except Exception as err:  # a scrape must answer; the failure is a metric of its own
            LOG.warning("metrics: status failed: %s", err)
            up = GaugeMetricFamily("fsc_status_up", "1 when the platform's state could be read for this scrape")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("fsc_status_up", "1 when the platform's state could be read for this scrape")
        up.add_metric([], 1)
        yield up
        yield from _site(st)
        yield from _switches(st)
        yield from _hosts(st)
        yield from _instances(st, self.load)


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def _site(st: StatusAnswer) -> Iterator[Metric]:
    g = _gauge("fsc_generation", "The committed generation (0 or 1; -1: nothing deployed)", [])
    g.add_metric([], st.generation if st.generation is not None else -1)
    yield g
    a = _gauge("fsc_applying", "1 while an update (apply, failover, drain) runs", [])
    a.add_metric([], int(st.applying))
    yield a
    u = _gauge("fsc_unplaced_instances", "Instances the last re-placement could not place", [])
    u.add_metric([], len(st.unplaced))
    yield u


#: A family: its class, name, help and the value of one row (None: no sample for that row).
_Family = tuple[type[GaugeMetricFamily | CounterMetricFamily], str, str, Callable[[Any], float | None]]


def _table(families: Sequence[_Family], labels: list[str], rows: Iterable[tuple[list[str], Any]]) -> list[Metric]:
    """One metric family per entry of ``families``, a sample per row (its label values, its object)."""
    out = [kind(name, doc, labels=labels) for kind, name, doc, _ in families]
    for values, row in rows:
        for metric, (_, _, _, get) in zip(out, families):
            v = get(row)
            if v is not None:
                metric.add_metric(values, v)
    return out


def _use(s: Any) -> float | None:
    return (s.installed if s.installed is not None else s.rules) / s.tcam if s.tcam else None


_G, _C = GaugeMetricFamily, CounterMetricFamily
_SWITCH: tuple[_Family, ...] = (
    (_G, "fsc_switch_connected", "1 when the switch holds an OpenFlow connection", lambda s: int(s.connected)),
    (_G, "fsc_switch_rules", "Rules the committed site has for the switch", lambda s: s.rules),
    (_G, "fsc_switch_rules_installed", "Rules read back from the switch at this scrape", lambda s: s.installed),
    (_G, "fsc_switch_tcam_capacity", "The switch's rule budget (tcam) from its profile", lambda s: s.tcam or None),
    (_G, "fsc_switch_tcam_use_ratio", "Installed (else committed) rules over the tcam budget", _use),
)
_HOST: tuple[_Family, ...] = (
    (_G, "fsc_host_alive", "1 while the host's agent sends heartbeats", lambda h: int(h.alive)),
    (_G, "fsc_host_drained", "1 when the host is drained (no placement uses it)", lambda h: int(h.drained)),
    (_G, "fsc_host_load1", "The host's 1-minute load average", lambda h: h.load and h.load.load1),
    (
        _G,
        "fsc_host_cpu_busy_ratio",
        "Busy share of all its cores since the previous heartbeat",
        lambda h: h.load and h.load.cpu_busy,
    ),
    (_G, "fsc_host_cores", "The host's cores", lambda h: h.load and h.load.cores),
    (
        _G,
        "fsc_host_memory_available_bytes",
        "The host's available memory",
        lambda h: h.load and h.load.memory_available,
    ),
    (_G, "fsc_host_memory_total_bytes", "The host's memory", lambda h: h.load and h.load.memory_total),
)
# rows of instances: (instance, its latest load sample or None)
_INSTANCE: tuple[_Family, ...] = (
    (_C, "fsc_instance_packets", "Packets the instance took in (agent report)", lambda r: r[0].packets),
    (_C, "fsc_instance_restarts", "Restarts of the instance by its agent", lambda r: r[0].restarts),
    (_C, "fsc_instance_bytes", "Bytes the instance took in (agent report)", lambda r: r[1] and r[1].bytes),
    (
        _C,
        "fsc_instance_cpu_seconds",
        "CPU seconds the instance used (agent report)",
        lambda r: r[1] and r[1].cpu_seconds,
    ),
)


def _switches(st: StatusAnswer) -> Iterator[Metric]:
    yield from _table(_SWITCH, ["switch"], (([s.name], s) for s in st.switches))


def _hosts(st: StatusAnswer) -> Iterator[Metric]:
    yield from _table(_HOST, ["host"], (([h.name], h) for h in st.hosts))


def _instances(st: StatusAnswer, load: Any) -> Iterator[Metric]:
    labels = ["host", "instance", "kind"]
    rows = [
        ([h.name, i.id, i.kind or ""], (i, load.latest(h.name, i.id) if load is not None else None))
        for h in st.hosts
        for i in h.instances
    ]
    state = _gauge("fsc_instance_state", "1 for the instance's current state", [*labels, "state"])
    for values, (i, _) in rows:
        for s in _STATES:
            state.add_metric([*values, s], int(i.state == s))
        if i.state not in _STATES:
            state.add_metric([*values, str(i.state)], 1)
    packets, restarts, nbytes, cpu = _table(_INSTANCE, labels, rows)
    yield from (packets, restarts, state, nbytes, cpu)
