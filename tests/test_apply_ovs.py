"""`fsc apply` end to end: real OVS bridges, the real controller subprocess,
the real CLI, real `fsc agent`s (with a stand-in `click` that can be told to
crash); the switch tables must equal the compiled .ofctl exactly.

One site through its life: first deploy, a repeat that changes nothing,
three failing updates that each leave the old tables (a new instance
crashes; a host's agent is gone; the second switch refuses a rule after the
first one flipped), then the update that goes through."""

from __future__ import annotations

import json
import re
from pathlib import Path

from test_controller_harness import NEEDS_OVS, SWITCHES, TWO, compile_files, events, lab_with_controller, real_agent

from backends.platform.controller.protocol import ApplyRequest, ResultFailed, SwitchEvent
from backends.platform.wait import wait_until
from compiler.lowering import tables as T

pytestmark = NEEDS_OVS

NEW = TWO.replace("10.70.99.0/24", "10.70.98.0/24")


def _break_ingress_rule(files: dict[str, str], switch: str) -> str:
    """Make one table-1 rule jump backwards (OpenFlow forbids it); returns its cookie."""
    doc = json.loads(files[f"openflow/{switch}.json"])
    flow = next(f for f in doc["flows"] if f["table_id"] == T.POLICY and f["cookie"])
    flow["actions"] = [{"type": "GOTO_TABLE", "table_id": 0}]
    files[f"openflow/{switch}.json"] = json.dumps(doc)
    return hex(flow["cookie"])


def test_apply_lifecycle(tmp_path: Path) -> None:
    site = tmp_path / "two_switch.fs"
    site.write_text(TWO)
    # a silent agent is not declared down during this test: the apply itself must notice it
    # (failover of a host that goes down is tests/test_failover.py's and the lab's)
    with lab_with_controller(tmp_path, SWITCHES, args=("--down-after", "3600")) as (lab, ctl):
        agents = {h: real_agent(tmp_path, h, ctl) for h in ("m1", "m2")}
        for a in agents.values():
            a.__enter__()

        def tables() -> dict[str, list[str]]:
            return {n: lab.flows(n) for n in SWITCHES}

        def runs(host: str) -> list[str]:
            st = ctl.get("/v1/status")
            # instances the agent runs (a Click configuration's modules are listed with `in`)
            return [i["id"] for h in st["hosts"] if h["name"] == host for i in h["instances"] if not i.get("in")]

        try:
            # first deploy (generation 0), then a repeat that changes nothing
            r = ctl.cli("apply", str(site), "--yes", "--drain", "0")
            assert r.returncode == 0, r.stdout + r.stderr
            assert "generation 0 is live" in r.stdout
            old = compile_files(site, tmp_path / "old", generation=0)
            ref_old = {n: lab.reference_of(old, n, tmp_path) for n in SWITCHES}
            assert tables() == ref_old
            assert runs("m1") == ["click.g0"]
            again = ctl.cli("apply", str(site), "--yes")
            assert again.returncode == 0 and "nothing to change" in again.stdout, again.stdout + again.stderr
            assert tables() == ref_old

            site.write_text(NEW)
            plan = ctl.cli("plan", str(site), "--format", "json")
            assert plan.returncode == 0, plan.stderr
            assert json.loads(plan.stdout)["new_generation"] == 1

            # the new generation's Click crashes on m2 (the old one keeps running)
            (tmp_path / "h2crash-m2").write_text("")
            r = ctl.cli("apply", str(site), "--yes", "--drain", "0")
            (tmp_path / "h2crash-m2").unlink()
            assert r.returncode == 3, r.stdout + r.stderr
            assert "instances failed to start: m2: click.g1" in r.stdout and "crashing on purpose" in r.stdout
            assert "rolled back" in r.stdout
            assert tables() == ref_old and ctl.get("/v1/deployed")["generation"] == 0
            wait_until(lambda: runs("m2") == ["click.g0"], 10, "m2 back to the old instance only")

            # a host whose agent is gone: the apply times out
            agents["m2"].__exit__(None, None, None)
            r = ctl.cli("apply", str(site), "--yes", "--ready-timeout", "1.5", "--drain", "0")
            assert r.returncode == 3, r.stdout + r.stderr
            assert "m2: click.g1 (" in r.stdout and "fsc agent" in r.stdout
            assert tables() == ref_old
            agents["m2"] = real_agent(tmp_path, "m2", ctl)
            agents["m2"].__enter__()

            # south refuses a rule of the flip, after north has flipped: both go back
            new = compile_files(site, tmp_path / "new", generation=1, previous=tmp_path / "old")
            bad = dict(new)
            cookie = _break_ingress_rule(bad, "south")
            evs = list(ctl.api.apply(ApplyRequest(site="two_switch", files=bad, drain_seconds=0)))
            assert [e.switch for e in evs if isinstance(e, SwitchEvent) and e.phase == "flip"] == ["north"]
            last = evs[-1]
            assert isinstance(last, ResultFailed) and last.rolled_back is True, last
            assert f"switch 0xb refused rule table={T.POLICY}" in last.error and cookie in last.error, last.error
            assert tables() == ref_old and ctl.get("/v1/deployed")["generation"] == 0

            # and the good update goes through, phase by phase
            r = ctl.cli("apply", str(site), "--yes", "--drain", "0.2", "--format", "json")
            assert r.returncode == 0, r.stdout + r.stderr
            evs = events(r.stdout)
            phases = [e.get("phase") for e in evs if "phase" in e]
            assert phases.index("install") < phases.index("flip") < phases.index("commit") < phases.index("cleanup")
            assert evs[-1]["result"] == "ok" and evs[-1]["generation"] == 1
            assert tables() == {n: lab.reference_of(new, n, tmp_path) for n in SWITCHES}
            # the agents stop the old generation's Click after the clean-up
            wait_until(
                lambda: runs("m1") == ["click.g1"] and runs("m2") == ["click.g1"], 15, "the agents to stop click.g0"
            )

            # the agents report the new configuration ready on their next heartbeat
            def ready_status():  # type: ignore[no-untyped-def]
                cp = ctl.cli("status")
                return cp if "starting" not in cp.stdout and "click.g0" not in cp.stdout else None

            text = wait_until(ready_status, 15, "status to show generation 1's instances ready", interval=0.2)
            assert text.returncode == 0, text.stderr
            assert "site `two_switch`, generation 1" in text.stdout
            assert re.search(r"click\.g1\s+click\s+ready", text.stdout), text.stdout  # the configuration, ready
            assert re.search(r"shaper\s+click\s+ready\s.*in click\.g1", text.stdout), text.stdout  # its modules
            st = ctl.get("/v1/status")
            assert st["generation"] == 1 and all(s["connected"] for s in st["switches"])
            assert all(s["installed"] == s["rules"] for s in st["switches"])
            assert all(h["alive"] for h in st["hosts"])
            # a switch the site does not have is logged and listed, and left alone
            lab.add_switch("h2stray", 0x77, ctl)
            wait_until(lambda: ctl.get("/v1/status")["unknown_switches"] == [0x77], 15, "the stray switch")
            assert "switch 0x77 connected, but the deployed site has no switch with that dpid" in ctl.log.read_text()
            assert "0x77" in ctl.cli("status").stdout

            # a change to one policy's match touches only ingress rules: the
            # client keeps the generation and the flip bundle is the whole update
            site.write_text(NEW.replace("dst net 10.80.0.0/24", "dst net 10.80.0.0/25"))
            r = ctl.cli("apply", str(site), "--yes", "--drain", "0", "--format", "json")
            assert r.returncode == 0, r.stdout + r.stderr
            evs = events(r.stdout)
            plan_ev = next(e for e in evs if e.get("phase") == "plan")
            assert plan_ev["new_generation"] == 1 and "warning" not in plan_ev, plan_ev
            per_switch = plan_ev["switches"]
            assert all(s["install"] == 0 and s["cleanup"] == 0 for s in per_switch.values()), per_switch
            assert 0 < sum(s["flip"] for s in per_switch.values()) <= 12, per_switch
            narrowed = compile_files(site, tmp_path / "narrowed", generation=1, previous=tmp_path / "new")
            assert tables() == {n: lab.reference_of(narrowed, n, tmp_path) for n in SWITCHES}
        finally:
            for a in agents.values():
                a.__exit__(None, None, None)
