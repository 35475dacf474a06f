"""Groups changed behind the controller's back are found by the pre-apply
reconcile's cheap check (per-table flow counts and the number of groups,
two small replies) and repaired before the update: real OVS bridges, the
real controller subprocess and CLI, real `fsc agent`s (stand-in `click`).

Site: examples/two_switch.fs, whose replicated `acct` has a fast-failover
group on each switch (issue 12, item 9)."""

from __future__ import annotations

from pathlib import Path

from test_controller_harness import NEEDS_OVS, SWITCHES, TWO, compile_files, events, lab_with_controller, real_agent

pytestmark = NEEDS_OVS


def _groups(files: dict[str, str], switch: str) -> int:
    return sum(1 for line in files.get(f"openflow/{switch}.groups", "").splitlines() if line.startswith("group_id="))


def test_a_group_added_or_deleted_behind_the_controllers_back_is_repaired_before_the_next_update(
    tmp_path: Path,
) -> None:
    site = tmp_path / "two_switch.fs"
    site.write_text(TWO)
    with lab_with_controller(tmp_path, SWITCHES, args=("--down-after", "3600")) as (lab, ctl):
        agents = [real_agent(tmp_path, h, ctl) for h in ("m1", "m2")]
        for a in agents:
            a.__enter__()
        try:
            r = ctl.cli("apply", str(site), "--yes", "--drain", "0")
            assert r.returncode == 0, r.stdout + r.stderr
            files = compile_files(site, tmp_path / "c0", generation=0)
            assert all(_groups(files, n) > 0 for n in SWITCHES)
            assert {n: len(lab.ovs.dump_groups(n)) for n in SWITCHES} == {n: _groups(files, n) for n in SWITCHES}

            # a stray group on north (no flow uses it: every table's flow count is as verified)
            stray = tmp_path / "stray.groups"
            stray.write_text("group_id=77,type=ff,bucket=watch_port:1,actions=output:1\n")
            lab.ovs.ofctl("add-groups", str(stray), bridge="north")
            flows_before = {n: lab.flows(n) for n in SWITCHES}
            # every group of south deleted (OVS deletes the flows that use them too)
            lab.ovs.ofctl("del-groups", bridge="south")
            assert lab.ovs.dump_groups("south") == []

            for k, text in enumerate((TWO.replace("dst net 10.80.0.0/24", "dst net 10.80.0.0/25"), TWO), start=1):
                site.write_text(text)  # an ingress-only change: the same generation, no group changes
                r = ctl.cli("apply", str(site), "--yes", "--drain", "0", "--format", "json")
                assert r.returncode == 0, r.stdout + r.stderr
                evs = events(r.stdout)
                prepare = [e for e in evs if e.get("phase") == "prepare"]
                if k == 1:  # north: one stray group removed; south: its groups and their flows put back
                    assert prepare and prepare[0]["repaired"] >= 1 + _groups(files, "south"), r.stdout
                else:  # nothing changed behind its back since: trusted without a full read
                    assert not prepare, r.stdout
                    assert "per-table flow counts as last verified; not read" in ctl.log.read_text()
                want = compile_files(site, tmp_path / f"c{k}", generation=0)
                for n in SWITCHES:  # exactly the compiled flows and groups (as OVS shows them when loaded)
                    assert lab.flows(n) == lab.reference_of(want, n, tmp_path), n
                    assert sorted(lab.ovs.dump_groups(n)) == sorted(lab.ovs.dump_groups("h2ref")), n
            assert "group_id=77," not in "".join(lab.ovs.dump_groups("north"))
            assert lab.flows("north") == flows_before["north"]
        finally:
            for a in agents:
                a.__exit__(None, None, None)
