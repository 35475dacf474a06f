"""Pure parts of the controller: flow conversion and canonical form, the phased
update plan, reconciliation, instance sets, heartbeat bookkeeping, state files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from test_controller_harness import compile_files

from backends.platform.controller.agents import AgentBook
from backends.platform.controller.flows import FlowFormatError, match_canonical, parse_entry, to_match
from backends.platform.controller.instances import desired, host_specs
from backends.platform.controller.plan import (
    apply_ops,
    ingress_tables,
    plan_update,
    reconcile_ops,
    same_tables,
    switch_tables,
)
from backends.platform.controller.protocol import Heartbeat, InstanceChanges, InstanceReport
from backends.platform.controller.state import DeployedState, Journal, StateDir
from compiler.lowering import tables as T

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def vpn(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], dict[str, str]]:
    d = tmp_path_factory.mktemp("h2vpn")
    site = ROOT / "examples" / "vpn_gateway.fs"
    g0 = compile_files(site, d / "g0", generation=0)
    g1 = compile_files(site, d / "g1", generation=1, previous=d / "g0")
    return g0, g1


def _entry(**kw: object) -> dict:
    e = {"table_id": 20, "priority": 100, "cookie": 0, "match": {}, "actions": []}
    e.update(kw)  # type: ignore[arg-type]
    return e


def test_masks_are_normalised_like_a_switch_does() -> None:
    # bits outside the mask and all-ones masks do not make two matches differ
    a = to_match({"tcp_dst": "0x13c5/0xfffe", "eth_type": 2048, "ip_proto": 6, "ipv4_dst": "10.0.0.0/255.255.255.255"})
    b = to_match({"ip_proto": 6, "eth_type": 2048, "tcp_dst": "0x13c4/0xfffe", "ipv4_dst": "10.0.0.0"})
    assert match_canonical(a) == match_canonical(b)
    assert match_canonical(a) != match_canonical(to_match({"eth_type": 2048, "ip_proto": 6, "tcp_dst": 5060}))


def test_instruction_order_does_not_matter_but_content_does() -> None:
    goto = {"type": "GOTO_TABLE", "table_id": 21}
    push = {"type": "PUSH_VLAN", "ethertype": 33024}
    f1 = parse_entry(_entry(actions=[goto, push]))
    f2 = parse_entry(_entry(actions=[push, goto]))
    f3 = parse_entry(_entry(actions=[push, {"type": "GOTO_TABLE", "table_id": 22}]))
    assert f1.canonical == f2.canonical != f3.canonical
    assert f1.key == f3.key  # same table, priority and match: the same slot


@pytest.mark.parametrize(
    "entry, word",
    [
        (_entry(match={"tcp_flagz": 1}), "tcp_flagz"),
        (_entry(actions=[{"type": "TELEPORT"}]), "TELEPORT"),
        (_entry(match={"ipv4_dst": "not-an-ip/8"}), "ipv4_dst"),
    ],
)
def test_bad_entries_are_named(entry: dict, word: str) -> None:
    with pytest.raises(FlowFormatError, match=word):
        parse_entry(entry)


def test_phases_keep_traffic_on_one_generation(vpn: tuple[dict[str, str], dict[str, str]]) -> None:
    g0, g1 = vpn
    plan = plan_update(g0, g1)
    assert (plan.old_generation, plan.new_generation) == (0, 1)
    ingress = ingress_tables(g1)
    assert ingress == set(T.INGRESS_TABLES)
    old = switch_tables(g0)["gw"][1]
    new = switch_tables(g1)["gw"][1]
    p = plan.switches["gw"]
    assert p.install and p.flip and p.cleanup
    # install only adds, and only outside the ingress tables: ingress behaviour unchanged
    assert all(c == "add" and f.table_id not in ingress for c, f in p.install)
    after_install = apply_ops(old, p.install)
    assert {k: v.canonical for k, v in after_install.items() if k[0] in ingress} == {
        k: v.canonical for k, v in old.items() if k[0] in ingress
    }
    # install never touches an old rule, so old-generation packets see the old tables
    assert all(after_install[k].canonical == v.canonical for k, v in old.items())
    # flip only touches the ingress tables (on this site: the classification rules)
    assert all(f.table_id in ingress for _, f in p.flip)
    after_flip = apply_ops(after_install, p.flip)
    # cleanup only deletes outside the ingress tables, and the result is exactly the new site
    assert all(c == "delete" and f.table_id not in ingress for c, f in p.cleanup)
    assert same_tables(new, apply_ops(after_flip, p.cleanup)) == []
    doc = plan.answer()
    assert doc.switches["gw"].added == len(p.install) + len(p.flip)
    assert doc.instances == InstanceChanges(started=[], stopped=[], moved={})


def test_same_files_plan_nothing(vpn: tuple[dict[str, str], dict[str, str]]) -> None:
    g0, _ = vpn
    plan = plan_update(g0, g0)
    assert plan.empty and all(p.empty for p in plan.switches.values())


def test_first_deploy_installs_everything(vpn: tuple[dict[str, str], dict[str, str]]) -> None:
    g0, _ = vpn
    plan = plan_update(None, g0)
    p = plan.switches["gw"]
    assert not p.cleanup and plan.old_generation is None
    assert same_tables(switch_tables(g0)["gw"][1], apply_ops({}, p.install + p.flip)) == []


def test_reconcile_reaches_any_target_and_can_keep_other_tables(vpn: tuple[dict[str, str], dict[str, str]]) -> None:
    g0, g1 = vpn
    old, new = switch_tables(g0)["gw"][1], switch_tables(g1)["gw"][1]
    mixed = apply_ops(old, plan_update(g0, g1).switches["gw"].install)
    assert same_tables(old, apply_ops(mixed, reconcile_ops(mixed, old))) == []
    assert same_tables(new, apply_ops(old, reconcile_ops(old, new))) == []
    step1 = reconcile_ops(mixed, old, keep=lambda f: f.table_id not in {0, 1, 2})
    assert step1 == []  # the ingress tables are still old: nothing to flip back
    assert reconcile_ops(old, old) == []


def test_instance_sets_per_generation(tmp_path: Path) -> None:
    site = ROOT / "examples" / "campus.fs"
    g0 = compile_files(site, tmp_path / "g0", generation=0)
    g1 = compile_files(site, tmp_path / "g1", generation=1, previous=tmp_path / "g0")
    specs = host_specs(g0)
    assert [s.id for s in specs["mh1"]][:1] == ["bl"] and "click.g0" in [s.id for s in specs["mh1"]]
    kinds = {s.id: s.kind for h in specs.values() for s in h}
    assert kinds["bl"] == "process" and kinds["ids#1"] == "vm" and kinds["click.g0"] == "click"
    both = desired([g0, g1])
    ids = [s.id for s in both["mh1"]]
    assert "click.g0" in ids and "click.g1" in ids and ids.count("bl") == 1
    assert {s.generation for s in both["mh1"] if s.id == "bl"} == {1}  # the newer spec wins


def test_readiness_needs_the_wanted_digest(vpn: tuple[dict[str, str], dict[str, str]]) -> None:
    g0, g1 = vpn
    book = AgentBook()
    book.want([g0, g1])
    want = host_specs(g1)
    assert book.not_ready(want) == {"crypto": ["click.g1 (no agent)"]}
    spec = want["crypto"][0]
    book.heartbeat("crypto", Heartbeat(instances=[InstanceReport(id="click.g1", digest="x", state="ready")]), 0)
    assert book.not_ready(want) == {"crypto": ["click.g1 (old version)"]}
    ans = book.heartbeat(
        "crypto", Heartbeat(instances=[InstanceReport(id="click.g1", digest=spec.digest, state="ready")]), 0
    )
    assert book.not_ready(want) == {} and book.alive("crypto")
    assert [s.id for s in ans.instances] == ["click.g0", "click.g1"]
    assert not book.knows("elsewhere")


def test_state_files_are_atomic_and_private(tmp_path: Path) -> None:
    st = StateDir(tmp_path / "state")
    token = st.token()
    assert len(token) > 30 and st.token() == token
    assert stat.S_IMODE(os.stat(st.token_path).st_mode) == 0o600
    assert st.deployed() is None and st.journal() is None
    st.commit(1, {"a": "b"}, "s", "src", "sha256:00")
    st.write_journal(Journal(phase="flip", generation=1, site="s"))
    assert st.deployed() == DeployedState(generation=1, files={"a": "b"}, site="s", source="src", digest="sha256:00")
    assert json.loads((tmp_path / "state" / "deployed.json").read_text()) == {
        "generation": 1,
        "files": {"a": "b"},
        "site": "s",
        "source": "src",
        "digest": "sha256:00",
    }
    assert st.journal() == Journal(phase="flip", generation=1, site="s")
    st.clear_journal()
    assert st.journal() is None
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["deployed.json", "token"]
    json.loads((tmp_path / "state" / "deployed.json").read_text())


def test_instances_started_stopped_moved(tmp_path: Path) -> None:
    two = (ROOT / "examples" / "two_switch.fs").read_text()
    (tmp_path / "a.fs").write_text(two)
    (tmp_path / "b.fs").write_text(
        two.replace("pin shaper to m2", "pin shaper to m1")
        .replace("acct * 2 by flow", "acct")
        .replace("acct * 2", "acct")
    )
    a = compile_files(tmp_path / "a.fs", tmp_path / "a", generation=0)
    b = compile_files(tmp_path / "b.fs", tmp_path / "b", generation=1, previous=tmp_path / "a")
    doc = plan_update(a, b).answer()
    assert doc.model_dump(by_alias=True)["instances"]["moved"] == {"shaper": {"from": "m2", "to": "m1"}}
    assert doc.instances.started == ["acct"] and doc.instances.stopped == ["acct#1", "acct#2"]
    from backends.platform.controller.render import plan_text

    text = plan_text(doc, "two_switch")
    assert "shaper m2 -> m1" in text and "started: acct" in text and "generation 0 -> 1" in text
