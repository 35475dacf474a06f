"""Drain split rules never tie with, or cover, a rule just above the one they
split (pure: tables in, split rules out)."""

from __future__ import annotations

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from backends.platform.controller import drainrules as D
from backends.platform.controller.flows import Flow
from backends.platform.controller.plan import Tables


def _flow(priority: int, port: int, **match: object) -> Flow:
    out = parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [parser.OFPActionOutput(port)])
    return Flow(2, priority, 0, parser.OFPMatch(**match), (out,))


def _tables(*flows: Flow) -> Tables:
    return {f.key: f for f in flows}


BASE = {"eth_type": 0x0800, "ipv4_dst": ("10.0.0.0", "255.0.0.0")}


def _split(above: Flow | None, moved_above: bool = False) -> D.DrainRules:
    """Rule ``BASE`` at 100 moves from port 1 to port 2; ``above`` is in both tables."""
    old = [_flow(100, 1, **BASE)]
    new = [_flow(100, 2, **BASE)]
    if above is not None:
        old.append(above)
        new.append(_flow(above.priority, 9, **dict(above.match.items())) if moved_above else above)
    return D.drain_rules(_tables(*old), _tables(*new), frozenset({0}))


def _split_priorities(rules: D.DrainRules) -> set[int]:
    return {f.priority for f in rules.flows.values() if f.table_id == 2}


def test_a_rule_alone_is_split_above_itself() -> None:
    rules = _split(None)
    assert rules.unsplit == [] and _split_priorities(rules) == {101, 102}


def test_a_variant_just_above_that_meets_it_moves_it_at_once() -> None:
    """An in_port variant at 101 inside the moved rule's packets: a split rule
    at 101 would tie with it and the SYN rule at 102 would take its SYNs."""
    for priority in (101, 102):
        rules = _split(_flow(priority, 7, in_port=5, **BASE))
        assert len(rules.unsplit) == 1 and rules.flows == {}, priority


def test_a_disjoint_rule_just_above_does_not_stop_the_split() -> None:
    other = _flow(101, 7, eth_type=0x0800, ipv4_dst=("11.0.0.0", "255.0.0.0"))
    assert _split(other).unsplit == [] and _split_priorities(_split(other)) == {101, 102}
    udp = _flow(102, 7, eth_type=0x0800, ip_proto=17, **{"ipv4_dst": ("10.1.0.0", "255.255.0.0")})
    assert _split(udp).unsplit == []  # the split rules are TCP only
    far = _flow(103, 7, in_port=5, **BASE)  # above both split rules: it still wins
    assert _split(far).unsplit == []


def test_two_moved_rules_whose_splits_would_meet_split_only_one() -> None:
    rules = _split(_flow(101, 7, in_port=5, **BASE), moved_above=True)
    assert len(rules.unsplit) == 1
    assert _split_priorities(rules) == {102, 103}  # the variant's split; the base moves at once


def test_overlap_reads_masks() -> None:
    def tlvs(**m: object) -> tuple:
        return _flow(1, 1, **m).key[2]

    a = tlvs(eth_type=0x0800, ipv4_dst=("10.0.0.0", "255.0.0.0"))
    assert D.overlap(a, tlvs(eth_type=0x0800, ipv4_dst="10.2.3.4"))
    assert not D.overlap(a, tlvs(eth_type=0x0800, ipv4_dst="11.2.3.4"))
    assert not D.overlap(a, tlvs(eth_type=0x86DD))
    assert D.overlap(a, tlvs(in_port=3))
    assert D.overlap(
        tlvs(eth_type=0x0800, ipv4_dst=("10.0.0.0", "255.255.0.0")),
        tlvs(eth_type=0x0800, ipv4_dst=("10.0.0.0", "255.0.0.0")),
    )


def test_split_table_entries_of_two_rules_never_meet() -> None:
    """Table 250 matches only the split rule's own match: two moved rules (in
    two tables) whose matches meet would share its entries."""
    wide = {"eth_type": 0x0800, "ipv4_dst": ("10.0.0.0", "255.0.0.0")}
    narrow = {"eth_type": 0x0800, "ipv4_dst": ("10.1.0.0", "255.255.0.0")}
    other = {"eth_type": 0x0800, "ipv4_dst": ("11.0.0.0", "255.0.0.0")}

    def moved(table: int, port: int, match: dict) -> Flow:
        f = _flow(100, port, **match)
        return Flow(table, f.priority, 0, f.match, f.instructions)

    for second, split in ((narrow, 1), (other, 2)):
        old = _tables(moved(2, 1, wide), moved(3, 1, second))
        new = _tables(moved(2, 2, wide), moved(3, 2, second))
        rules = D.drain_rules(old, new, frozenset({0}))
        assert len(rules.old_branches) == split and len(rules.unsplit) == 2 - split


def test_split_table_entries_are_told_apart_by_their_tag() -> None:
    """The table-250 check looks only at rules of the same exact tag (or of
    no exact tag): equal matches under two tags both split, under one tag or
    a masked tag only the first."""
    ip = {"eth_type": 0x0800, "ipv4_dst": ("10.0.0.0", "255.0.0.0")}

    def moved(table: int, port: int, tag: object) -> Flow:
        f = _flow(100, port, vlan_vid=tag, **ip)
        return Flow(table, f.priority, 0, f.match, f.instructions)

    for first, second, split in ((0x1001, 0x1002, 2), (0x1001, 0x1001, 1), (0x1001, (0x1000, 0x1000), 1)):
        old = _tables(moved(2, 1, first), moved(3, 1, second))
        new = _tables(moved(2, 2, first), moved(3, 2, second))
        rules = D.drain_rules(old, new, frozenset({0}))
        assert len(rules.old_branches) == split and len(rules.unsplit) == 2 - split, (first, second)


def test_many_moved_rules_of_distinct_tags_all_split() -> None:
    """A move of 400 steering rules (one tag each) splits every one."""
    ip = {"eth_type": 0x0800, "ipv4_dst": ("10.0.0.0", "255.0.0.0")}
    old = _tables(*(_flow(100, 1, vlan_vid=0x1000 | t, **ip) for t in range(1, 401)))
    new = _tables(*(_flow(100, 2, vlan_vid=0x1000 | t, **ip) for t in range(1, 401)))
    rules = D.drain_rules(old, new, frozenset({0}))
    assert rules.unsplit == [] and len(rules.old_branches) == 400
