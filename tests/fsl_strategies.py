"""Hypothesis strategies for random FSL syntax trees (printed, then parsed)."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from fslang import ast as A
from fslang.parser.lalr import reserved_keywords

names = (
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True)
    .filter(lambda s: s not in reserved_keywords())
    .map(A.Name)
)

ints = st.integers(0, 65535).map(A.IntVal)
ranges = st.tuples(st.integers(0, 1000), st.integers(0, 1000)).map(lambda t: A.RangeVal(min(t), max(t)))
sizes = st.sampled_from(["16GiB", "512MiB", "64KiB", "2GB", "1B"]).map(
    lambda t: A.SizeVal(__import__("fslang.values", fromlist=["x"]).parse_size(t), t)
)
rates = st.sampled_from(["100Mbps", "10Gbps", "1.5Mpps", "7pps"]).map(
    lambda t: A.RateVal(*__import__("fslang.values", fromlist=["x"]).parse_rate(t), t)
)
percents = st.sampled_from(["5%", "0.5%", "100%"]).map(lambda t: A.PercentVal(float(t[:-1]), t))
v4 = st.integers(0, 2**32 - 1).map(lambda i: A.AddrVal(ipaddress.IPv4Address(i)))
v6 = st.integers(0, 2**128 - 1).map(lambda i: A.AddrVal(ipaddress.IPv6Address(i)))
p4 = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(
    lambda t: A.PrefixVal(ipaddress.IPv4Network((t[0] >> (32 - t[1]) << (32 - t[1]) if t[1] else 0, t[1])))
)
p6 = st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 128)).map(
    lambda t: A.PrefixVal(ipaddress.IPv6Network((t[0] >> (128 - t[1]) << (128 - t[1]) if t[1] else 0, t[1])))
)
macs = st.integers(0, 2**48 - 1).map(A.MacVal)
strings = (
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
    .filter(lambda s: __import__("fslang.values", fromlist=["x"]).uncarried(s) is None)  # E0016
    .map(A.StringVal)
)
bools = st.booleans().map(A.BoolVal)
refs = names.map(A.RefVal)
scalars = st.one_of(ints, ranges, sizes, rates, percents, v4, v6, p4, p6, macs)
set_items = st.one_of(scalars, refs)
sets = st.lists(set_items, max_size=4).map(lambda xs: A.SetVal(tuple(xs)))
values = st.one_of(scalars, sets, strings, bools, refs)

dirs = st.sampled_from([None, "src", "dst"])
addr_vals = st.one_of(
    v4, v6, p4, p6, refs, st.lists(st.one_of(v4, p4), min_size=1, max_size=3).map(lambda xs: A.SetVal(tuple(xs)))
)
port_vals = st.one_of(
    ints, ranges, refs, st.lists(st.one_of(ints, ranges), min_size=1, max_size=3).map(lambda xs: A.SetVal(tuple(xs)))
)
primitives = st.one_of(
    st.sampled_from(["ip", "ip6", "arp", "tcp", "udp", "icmp", "icmp6"]).map(A.MProto),
    st.integers(0, 255).map(A.MProtoNum),
    st.builds(A.MHost, dirs, addr_vals),
    st.builds(A.MNet, dirs, addr_vals),
    st.builds(A.MPort, dirs, port_vals),
    st.integers(0, 4095).map(A.MVlan),
    st.builds(A.MEther, dirs, st.one_of(macs, refs)),
    st.integers(0, 63).map(A.MDscp),
    names.map(A.MRef),
)
matches = st.recursive(
    primitives,
    lambda inner: st.one_of(
        inner.map(A.MNot),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: A.MAnd(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: A.MOr(tuple(xs))),
    ),
    max_leaves=8,
)


def _serial(stages: list) -> object:
    flat: list = []
    for s in stages:
        flat.extend(s.stages if isinstance(s, A.PSerial) else (s,))
    return flat[0] if len(flat) == 1 else A.PSerial(tuple(flat))


def _stages(inner):
    pipe = st.lists(inner, min_size=1, max_size=3).map(_serial)
    branch = st.builds(A.Branch, st.one_of(st.none(), names), pipe)
    arm = st.builds(A.CaseArm, st.one_of(st.none(), matches), pipe)
    return st.one_of(
        st.builds(
            A.PUse,
            names,
            st.one_of(st.none(), st.integers(1, 9).map(A.IntVal)),
            st.none(),
            st.one_of(st.none(), st.lists(branch, min_size=1, max_size=3).map(tuple)),
        ),
        st.builds(A.PUse, names, st.integers(1, 9).map(A.IntVal), st.sampled_from(["src", "dst", "flow"]), st.none()),
        st.builds(  # `m * A..B weights ...`
            A.PUse,
            names,
            st.integers(1, 4).map(A.IntVal),
            st.sampled_from([None, "src", "flow"]),
            st.none(),
            upto=st.one_of(st.none(), st.integers(4, 9).map(A.IntVal)),
            weights=st.lists(st.integers(1, 9).map(A.IntVal), max_size=4).map(tuple),
        ),
        st.lists(arm, min_size=1, max_size=3).map(lambda xs: A.PCase(tuple(xs))),
        st.builds(A.PCopy, percents, inner),
    )


leaf_stages = st.one_of(st.just(A.PPass()), st.just(A.PDrop()), st.builds(A.PUse, names))
stages = st.recursive(leaf_stages, _stages, max_leaves=6)
pipelines = st.lists(stages, min_size=1, max_size=3).map(_serial)

port_refs = st.builds(A.PortRef, names, st.integers(1, 500))
port_specs = st.builds(A.PortSpec, names, st.integers(1, 50), st.one_of(st.none(), st.integers(50, 99)))


def opt(key: str, strat):
    return strat.map(lambda v: A.Option(key, v))


statements = st.one_of(
    st.builds(A.SiteStmt, names),
    st.builds(
        A.SwitchStmt,
        names,
        st.lists(
            st.one_of(
                opt("dpid", st.integers(0, 2**48)),
                opt("ports", st.integers(1, 64)),
                opt("tcam", st.integers(1, 9999)),
                opt("openflow", st.sampled_from(["1.3", "1.4", "1.5"])),
            ),
            max_size=4,
        ).map(tuple),
    ),
    st.builds(A.LinkStmt, port_refs, port_refs),
    st.builds(
        A.HostStmt,
        names,
        st.lists(port_refs, min_size=1, max_size=2).map(tuple),
        st.lists(
            st.one_of(
                opt("cores", st.integers(1, 64)),
                opt("memory", sizes),
                opt("runs", st.lists(names, min_size=1, max_size=3).map(tuple)),
                st.just(A.Option("spare", True)),
            ),
            max_size=4,
        ).map(tuple),
    ),
    st.builds(
        A.EdgeStmt,
        names,
        st.lists(port_specs, min_size=1, max_size=2).map(tuple),
        st.lists(
            st.one_of(
                opt("net", st.lists(st.one_of(p4, p6, refs), min_size=1, max_size=3).map(tuple)),
                st.just(A.Option("default", True)),
            ),
            max_size=2,
        ).map(tuple),
    ),
    st.builds(A.BoxStmt, names, port_refs, port_refs),
    st.builds(A.SetStmt, names, values),
    st.builds(A.ClassStmt, names, matches),
    st.builds(
        A.ModuleStmt,
        names,
        names,
        st.lists(st.builds(A.Param, names, st.one_of(matches, scalars, strings, bools, sets)), max_size=3).map(tuple),
        st.lists(
            st.one_of(
                opt("kind", names),
                opt("cores", st.integers(1, 8)),
                opt("memory", sizes),
                opt("image", strings),
                opt("replicas", st.integers(1, 8)),
                opt("replicas", st.builds(A.RangeVal, st.integers(1, 3), st.integers(3, 8))),
                opt("weights", st.lists(st.integers(1, 9).map(A.IntVal), min_size=1, max_size=3).map(tuple)),
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(
        A.PolicyStmt,
        names,
        st.lists(names, max_size=2).map(tuple),
        st.one_of(st.none(), matches),
        st.one_of(st.none(), pipelines),
        st.booleans(),
    ).filter(lambda p: p.pipeline is not None or not p.symmetric),
    st.builds(A.PinStmt, names, names),
    st.builds(A.AvoidStmt, names, names),
    st.sampled_from(["spread", "pack"]).map(A.PlacementStmt),
    st.sampled_from(["forward", "drop"]).map(A.DefaultStmt),
)
programs = st.lists(statements, max_size=8).map(lambda xs: A.Program(tuple(xs)))
