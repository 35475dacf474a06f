"""Consolidation (issue 13, item 5): the fewest-hosts placement (heuristic and
exact MILP agree, and beat the site's own objective where replicas spread),
the drain moves that carry it out (a drain with targets puts the instances
where the packed placement wants them, not on the spare), and `fsc plan
--consolidate` / `fsc apply --consolidate` against a real controller process
(tests/test_controller_cli.py's harness) are in tests/test_consolidate_cli.py."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from backends.platform.controller.consolidation import toward
from backends.platform.controller.plan import placement_of
from backends.platform.controller.protocol import DrainRequest
from compiler.placement.model import Problem
from compiler.placement.place import place
from fslang import api
from fslang.cli.consolidate import Consolidation, consolidation_json, consolidation_text, pack, placed
from tests.test_failover import _drain, _wait, advance, deployed, site_files  # noqa: F401 (fixtures)

FARM = """site farm
switch sw dpid 0x91 ports 16 ovs
host a at sw:1 cores 8 memory 8GiB runs click
host b at sw:2 cores 8 memory 8GiB runs click
host c at sw:3 cores 8 memory 8GiB runs click
host d at sw:4 cores 8 memory 8GiB runs click
edge wan at sw:16 default
edge lan at sw:15 net 10.82.0.0/24
module ids = monitor() replicas 4
policy web from wan match tcp via ids symmetric
"""


def test_the_fewest_hosts_objective_packs_replicas_that_spread_otherwise() -> None:
    b = api.build("farm.fs", FARM)
    assert b.ok and len(set(placed(b.files).values())) == 4  # one replica per host (spread and pack alike)
    c = pack("farm.fs", FARM, b.compiled.placement)
    assert c.ok and not [d for d in c.diagnostics if d.code == "W0701"]  # the MILP proved it
    ids_cores = next(m.cores for m in b.site.modules if m.name == "ids")
    assert len(set(placed(c.files).values())) == -(-4 * ids_cores // 8)
    # the heuristic alone reaches the same count
    site = dataclasses.replace(c.site, placement="fewest")
    heur = place(site, None, optimal=False)
    exact = place(site, None, optimal=True)
    assert heur.score is not None and exact.score is not None
    assert heur.score.hosts_used == exact.score.hosts_used == len(set(placed(c.files).values()))
    assert Problem(site).fewest and exact.score.key()[1] == exact.score.hosts_used


def test_the_plan_shows_hosts_freed_and_what_the_drains_move() -> None:
    c = Consolidation(
        "farm",
        {"ids#1": "a", "ids#2": "b", "ids#3": "c", "ids#4": "d"},
        {"ids#1": "a", "ids#2": "a", "ids#3": "b", "ids#4": "b"},
        ["a", "b", "c", "d"],
        True,
    )
    assert c.freed == ["c", "d"] and c.needed == []
    assert c.moved == {"ids#3": ("c", "b"), "ids#4": ("d", "b")}  # ids#2 stays: b is not freed
    assert c.targets("c") == {"ids#3": "b"}
    doc = json.loads(consolidation_json(c))
    assert doc["hosts_freed"] == ["c", "d"] and doc["moved"]["ids#3"] == {"from": "c", "to": "b"} and doc["exact"]
    text = consolidation_text(c)
    assert "4 hosts in use -> 2 (exact" in text and "hosts freed:  c, d" in text and "ids#3 c -> b" in text


def test_toward_moves_only_known_instances_to_known_hosts(site_files: dict[str, str]) -> None:  # noqa: F811
    text = site_files["placement.json"]
    where = placement_of(site_files)
    inst = next(i for i, h in where.items() if h == "m2")
    other = next(i for i in where if i != inst)
    out = toward(text, {inst: "m1", "nope": "m1", other: "nowhere"})
    moved = placement_of({"placement.json": out})
    assert moved[inst] == "m1" and {i: h for i, h in moved.items() if i != inst} == {
        i: h for i, h in where.items() if i != inst
    }
    assert toward(text, {}) == text and toward(None, {"x": "y"}) is None


def test_a_drain_with_targets_puts_the_instances_there_not_on_the_spare(deployed: Any) -> None:  # noqa: F811
    ctl, sw, agents, mon, clock = deployed
    where = placement_of(ctl.deployed().files)
    on_m2 = sorted(i for i, h in where.items() if h == "m2")
    assert on_m2
    t, events = _drain(ctl, "m2", DrainRequest(grace=30, idle=1, targets=dict.fromkeys(on_m2, "m1")))
    _wait(lambda: ctl.drain is not None and not ctl._applying, "the drain to start")
    advance(clock, mon, agents, 2)
    t.join(10)
    assert events[-1].result == "ok", events[-1]
    after = placement_of(ctl.deployed().files)
    assert {i: after[i] for i in on_m2} == dict.fromkeys(on_m2, "m1")  # a plain drain takes the spare m3
    assert "m3" not in after.values()
