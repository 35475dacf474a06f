"""Replica ranges (`m * A..B`, `replicas A..B`) and weights (`weights 3, 1`):
parsed, checked (B must fit), placed (A now), shared by weight in the
compiled tables exactly as the reference interpreter says, and shown in
plan.json."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.pipeline import compile_site
from compiler.steering.flowhash import BUCKETS, bucket, bucket_sets, reads_ports
from compiler.verification.interpreter import interpret
from compiler.verification.platform_sim import Platform
from fslang import api
from fslang.api import load
from tests.platform_harness import ref_summary, sim_summary

SITE = """site s
switch sw dpid 0x1 ports 16 {ovs}
host h1 at sw:1 cores 8 memory 16GiB
host h2 at sw:2 cores 8 memory 16GiB
edge out at sw:10 default
edge lan at sw:11 net 10.0.0.0/8
module fw = firewall(allow: ip)
{module}
policy p from lan via fw >> {use} symmetric
"""


def site_text(use: str, module: str = "module m = monitor()", ovs: str = "ovs") -> str:
    return SITE.format(use=use, module=module, ovs=ovs)


def check(text: str, tmp_path):  # noqa: ANN001, ANN201
    path = tmp_path / "site.fs"
    path.write_text(text)
    return load(path)


def codes(result) -> list[str]:  # noqa: ANN001
    return [d.code for d in result.diagnostics]


def test_range_places_its_low_end_and_names_instances_for_growth(tmp_path) -> None:  # noqa: ANN001
    front = check(site_text("m * 1..4"), tmp_path)
    assert front.site is not None and codes(front) == []
    m = front.site.module("m")
    assert (m.replicas, m.max_replicas, m.most_replicas) == (1, 4, 4)
    assert m.instance_names() == ("m#1",)  # a range names `m#1` even alone: the name survives growth
    c = compile_site(front.site)
    assert c.ok and sorted(c.host_of()) == ["fw", "m#1"]


def test_module_statement_range_and_weights(tmp_path) -> None:  # noqa: ANN001
    front = check(site_text("m", "module m = monitor() replicas 2..4 weights 3, 1, 1, 1"), tmp_path)
    assert front.site is not None and codes(front) == []
    m = front.site.module("m")
    assert (m.replicas, m.max_replicas, m.weights) == (2, 4, (3, 1, 1, 1))
    c = compile_site(front.site)
    assert c.ok and c.weights()["m#1"] == 3 and c.weights()["m#2"] == 1


def test_the_top_of_a_range_must_fit(tmp_path) -> None:  # noqa: ANN001
    # each host holds 4 instances of 2 cores: 8 fit (with fw's core, 7), 9 do not
    ok = check(site_text("m * 2..7", "module m = monitor() cores 2"), tmp_path)
    assert codes(ok) == [] and compile_site(ok.site).ok
    too_many = check(site_text("m * 2..9", "module m = monitor() cores 2"), tmp_path)
    assert "E0701" in codes(too_many)
    assert any("up to 9" in d.message for d in too_many.diagnostics)


def test_the_top_must_fit_with_placement_not_only_by_counting(tmp_path) -> None:  # noqa: ANN001
    # 3 cores each on two hosts of 8: counting says 16 cores hold 4 `m` and a 3-core `fw` (15),
    # but whole instances do not: 2 `m` per host leave 2 cores each, no room for `fw`
    text = site_text("m * 1..4", "module m = monitor() cores 3").replace(
        "firewall(allow: ip)", "firewall(allow: ip) cores 3"
    )
    front = check(text, tmp_path)
    assert front.site is not None and codes(front) == []
    c = compile_site(front.site)
    assert not c.ok
    assert any(d.code == "E0701" and "top of the replica ranges" in d.message for d in c.diagnostics), [
        (d.code, d.message) for d in c.diagnostics
    ]
    assert compile_site(check(text.replace("1..4", "1..3"), tmp_path).site).ok


def test_weight_count_must_match(tmp_path) -> None:  # noqa: ANN001
    assert codes(check(site_text("m * 3 weights 3, 1"), tmp_path)) == ["E0412"]
    assert codes(check(site_text("m * 2..3 weights 3, 1"), tmp_path)) == ["E0412"]
    assert codes(check(site_text("m * 2..3 weights 3, 1, 1"), tmp_path)) == []
    assert "E0014" in codes(check(site_text("m * 2 weights 0, 1"), tmp_path))
    assert "E0015" in codes(check(site_text("m * 4..2"), tmp_path))


def test_one_spec_per_module(tmp_path) -> None:  # noqa: ANN001
    two = site_text("m * 2..3") + "policy q from out via m * 2\n"
    assert "E0306" in codes(check(two, tmp_path))
    weights_once = site_text("m * 2 weights 3, 1") + "policy q from out via m * 2\n"
    front = check(weights_once, tmp_path)
    assert codes(front) == [] and front.site.module("m").weights == (3, 1)
    clash = site_text("m * 2 weights 3, 1") + "policy q from out via m * 2 weights 1, 3\n"
    assert "E0306" in codes(check(clash, tmp_path))


def test_weights_inside_braces_end_at_the_next_branch(tmp_path) -> None:  # noqa: ANN001
    """The comma after a weight list separates branches, with or without parentheses."""
    mod = "module m = monitor()\nmodule c = classify(a: tcp)"
    for stage in ("m * 2 weights 3, 1", "(m * 2 weights 3, 1)"):
        text = site_text(f"c {{ a: {stage}, else: pass }}", mod).replace(" symmetric", "")
        front = check(text, tmp_path)
        assert codes(front) == [] and front.site.module("m").weights == (3, 1)
    wrong = site_text("c { a: m * 2 weights 3, 1, 2, else: pass }", mod).replace(" symmetric", "")
    assert "E0412" in codes(check(wrong, tmp_path))  # three weights for two replicas


def test_standard_switches_warn_about_ranges_only(tmp_path) -> None:  # noqa: ANN001
    assert codes(check(site_text("m * 1..3", ovs=""), tmp_path)) == ["W0403"]
    assert codes(check(site_text("m * 3", ovs=""), tmp_path)) == []
    assert codes(check(site_text("m * 1..3"), tmp_path)) == []  # ovs: connection tracking keeps them


def test_plan_json_lists_weights_shares_and_range(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "site.fs"
    path.write_text(site_text("m * 2..4 weights 3, 1, 1, 1"))
    result = api.build_file(path)
    assert result.ok
    doc = json.loads(result.files["plan.json"])
    assert doc["replicas"] == {
        "m": {"range": [2, 4], "weights": {"m#1": 3, "m#2": 1}, "shares": {"m#1": 0.75, "m#2": 0.25}}
    }


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    weights=st.lists(st.integers(1, 9), min_size=2, max_size=5),
    by=st.sampled_from(["", " by src", " by dst"]),
    ovs=st.sampled_from(["ovs", ""]),
    seed=st.integers(0, 2**16),
)
def test_weights_share_buckets_and_tables_agree_with_the_interpreter(
    tmp_path_factory, weights: list[int], by: str, ovs: str, seed: int
) -> None:  # noqa: ANN001
    """The weights written in the site decide the shares: each replica owns
    its bucket_sets share exactly, and for random flows the simulated tables
    pick the replica that the interpreter picks."""
    tmp = tmp_path_factory.mktemp("w")
    text = site_text(f"m * {len(weights)} weights {', '.join(map(str, weights))}{by}", ovs=ovs)
    front = check(text, tmp)
    assert front.site is not None and not [d for d in front.diagnostics if d.severity == "error"]
    c = compile_site(front.site)
    assert c.ok
    names = front.site.module("m").instance_names()
    assert [c.weights()[n] for n in names] == weights
    shares = bucket_sets(weights)
    total = sum(weights)
    for s, w in zip(shares, weights):  # largest-remainder shares of 256 buckets: within one bucket
        assert abs(len(s) - w * BUCKETS / total) < 1
    pf = Platform(c)
    rng = random.Random(seed)
    owner = {b: i for i, s in enumerate(shares) for b in s}
    hash_by = by.strip().removeprefix("by ") or "flow"
    for _ in range(20):
        pkt = {
            "eth_src": 0x020000000001,
            "eth_dst": 0x020000000002,
            "eth_type": 0x0800,
            "ipv4_src": 0x0A000000 | rng.getrandbits(24),
            "ipv4_dst": rng.getrandbits(32) | 0x01000000,
            "ip_proto": 6,
            "ip_dscp": 0,
            "tcp_src": rng.getrandbits(16),
            "tcp_dst": rng.choice([80, 443, 22]),
        }
        ref = interpret(front.site, pkt, "lan", c.weights(), in_port=("sw", 11))
        tr = pf.trace(pkt, "lan", ("sw", 11))
        assert sim_summary(tr) == ref_summary(ref), (pkt, tr.error)
        k = owner[bucket(pkt, hash_by, reads_ports(front.site))]
        assert list(ref.modules) == ["fw", names[k]]


def test_plan_shows_replicas(tmp_path) -> None:  # noqa: ANN001
    """`fsc plan` (and `status`) print each replicated module's shares and range."""
    from backends.platform.controller.plan import plan_update
    from backends.platform.controller.render import plan_text

    path = tmp_path / "site.fs"
    path.write_text(site_text("m * 2..4 weights 3, 1, 1, 1"))
    result = api.build_file(path)
    assert result.ok
    answer = plan_update(None, result.files).answer()
    assert answer.replicas["m"].range == [2, 4]
    text = plan_text(answer, "s")
    assert "replicas m (2..4): m#1 75% (weight 3), m#2 25% (weight 1)" in text, text
