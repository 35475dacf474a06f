"""`click/HOST.click`: every example's host configurations pass the Click
checker, match their golden files byte for byte, come out the same every
time, keep their structure whatever strings a site holds, and make the
decisions of the model (firewall and classify rules evaluated on real packet
bytes against the exact header spaces).

``FSC_UPDATE_GOLDEN=1 pytest tests/test_click_generate.py`` rewrites the
golden files under ``tests/golden/click/EXAMPLE/HOST.click``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.click.lang.args import split_args
from backends.click.lang.ast import (
    AnonElement,
    Chain,
    ClickConfig,
    Declaration,
    ElementClassDef,
    InlineDecl,
)
from backends.click.lang.checker import check_config
from backends.click.lang.parser import parse_config
from backends.emit.click import elementclass as E
from backends.emit.click import generate as G
from compiler.check.frontend import run
from compiler.headerspace.space import DEFAULT_LAYOUT, HeaderSpace
from compiler.pipeline import Compiled, compile_site
from compiler.steering.hostplan import Step
from fslang.api import load
from fslang.values import uncarried
from tests.conftest import EXAMPLES, ROOT

GOLDEN = ROOT / "tests" / "golden" / "click"
UPDATE = os.environ.get("FSC_UPDATE_GOLDEN") == "1"
IDS = [p.stem for p in EXAMPLES]


@cache
def compiled(path: Path) -> Compiled:
    res = load(path)
    assert res.site is not None, [d.message for d in res.diagnostics]
    c = compile_site(res.site)
    assert c.ok, [d.message for d in c.diagnostics]
    return c


def compile_text(text: str) -> Compiled:
    res = run("test.fs", text)
    assert res.site is not None and not res.diagnostics, [f"{d.code} {d.message}" for d in res.diagnostics]
    c = compile_site(res.site)
    assert c.ok, [d.message for d in c.diagnostics]
    return c


# ---------------------------------------------------------------- the examples


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_every_host_config_checks_clean(example: Path) -> None:
    c = compiled(example)
    files = G.render_click(c)
    hosts = {h for h in c.host_of().values()}
    assert set(files) == {f"click/{h}.click" for h in hosts}
    for path, text in files.items():
        assert check_config(text, path) == []


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_golden(example: Path) -> None:
    files = G.render_click(compiled(example))
    gold = GOLDEN / example.stem
    if UPDATE:
        gold.mkdir(parents=True, exist_ok=True)
        for old in gold.glob("*.click"):
            old.unlink()
    for path, text in files.items():
        target = gold / Path(path).name
        if UPDATE:
            target.write_bytes(text.encode("utf-8"))
        assert target.exists(), f"no golden file {target}: run with FSC_UPDATE_GOLDEN=1 and review the diff"
        assert target.read_bytes() == text.encode("utf-8"), f"{target} differs: run with FSC_UPDATE_GOLDEN=1"
    stale = {p.name for p in gold.glob("*.click")} - {Path(p).name for p in files}
    assert not stale, f"golden files for hosts without a configuration: {sorted(stale)}"


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_rendering_is_deterministic(example: Path) -> None:
    first = G.render_click(compiled(example))
    assert G.render_click(compiled(example)) == first
    again = compile_site(load(example).site)
    assert G.render_click(again) == first


def test_emit_writes_the_click_configs() -> None:
    from backends.emit.output import render

    c = compiled(ROOT / "examples" / "campus.fs")
    files = render(c)
    assert files["click/mh1.click"] == G.render_click(c)["click/mh1.click"]
    assert "click/mh3.click" not in files  # the spare host has no instance


def test_host_plumbing_of_campus() -> None:
    text = G.render_click(compiled(ROOT / "examples" / "campus.fs"))["click/mh1.click"]
    # demultiplexed by the outer VLAN id, outer tag stripped, PCP ignored
    assert "12/8100 14/0004%0fff,  // tag 4: fw" in text
    assert "steer [1] -> VLANDecap -> t4;" in text
    # fw is shared by three steps: painted, then switched back per step
    assert "t4 :: Paint(0);" in text and "t7 :: Paint(2);" in text
    assert "o_fw_0 [0] -> t3;  // out" in text  # local: fw -> ids#1 without the switch
    assert "o_fw_0 [1] -> vid_5;  // out" in text  # to the switch, re-tagged
    assert "vid_5 :: VLANEncap(VLAN_ID 5);" in text
    assert "t7 -> [1] i_fw;" in text  # the reverse step judges with swapped rules
    assert "allow tcp && src port 80," in text and "drop dst net 203.0.113.0/24," in text
    # vm instance over its tap, the step's tag on the wire, output in the PCP bits
    assert "ToDevice(fs-ids.1)" in text and "12/8100 14/2008%efff,  // tag 8 (reverse), alert" in text


def test_element_choices() -> None:
    campus = G.render_click(compiled(ROOT / "examples" / "campus.fs"))
    hetero = G.render_click(compiled(ROOT / "examples" / "hetero.fs"))
    ids = G.render_click(compiled(ROOT / "examples" / "ids_farm.fs"))
    mh2 = campus["click/mh2.click"]
    assert "fwd_ip :: IPClassifier(" in mh2  # classify
    assert "input -> count :: Counter -> Discard;" in mh2  # monitor(sink: true)
    assert "BandwidthRatedSplitter(1250000Bps, BURST_BYTES 65536)" in mh2  # 10Mbps, 64KiB
    assert "RatedSplitter(20000, BURST_SIZE 11)" in ids["click/s1.click"]  # 20Kpps, 16KiB
    assert "IPRewriter(pattern 203.0.113.1 1024-65535 - - 0 0, pass 0)" in hetero["click/b.click"]
    assert (
        "RoundRobinIPMapper(- - 10.30.1.11 - 0 0, - - 10.30.1.12 - 0 0, - - 10.30.1.13 - 0 0)"
        in hetero["click/a.click"]
    )
    mh1 = campus["click/mh1.click"]
    assert "IPsecESPEncap -> IPsecAuthHMACSHA1(0) -> IPsecAES(1) -> IPsecEncap(50)" in mh1
    assert "StripIPHeader -> IPsecAES(0) -> IPsecAuthHMACSHA1(1) -> IPsecESPUnencap" in mh1
    assert "encap :: IPEncap(47, 192.0.2.254, 192.0.2.1);" in mh1
    assert "StoreData(0, \\<00000800>)" in mh1


# ---------------------------------------------------------------- quoting


def click_unquote(text: str) -> str:
    """Click's cp_unquote for one double-quoted string (the escapes quote() writes)."""
    assert text[0] == '"' and text[-1] == '"'
    body, out, i = text[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt == "<":
                j = body.index(">", i)
                out += bytes.fromhex(body[i + 2 : j])
                i = j + 1
                continue
            out += nxt.encode()
            i += 2
            continue
        assert ch != '"'
        out += ch.encode()
        i += 1
    return out.decode("utf-8", "surrogatepass")


HOSTILE = [
    '"',
    "\\",
    "'",
    "</",
    ";",
    "$(",
    "${x}",
    "$x",
    "{{",
    "}}",
    "{%",
    ",",
    "(",
    ")",
    "//",
    "/*",
    "*/",
    "\t",
    "\r",
    "\x7f",
    "é",
    "\u2028",
    " ",
    "#",
    "->",
    "::",
    "[0]",
    "elementclass",
    "%",
    "`",
]
hostile_text = (
    st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(min_size=1, max_size=3)), min_size=1, max_size=8)
    .map("".join)
    .filter(lambda s: "\n" not in s and "\x00" not in s and not any(0xD800 <= ord(c) <= 0xDFFF for c in s))
)


@given(hostile_text)
def test_quote_round_trips(s: str) -> None:
    q = G.quote(s)
    assert "\n" not in q and "\r" not in q and q.isascii()
    assert click_unquote(q) == s
    assert split_args(f"a {q} b, c") == (f"a {q} b", "c")  # one argument, no comment, no unbalanced quote


def fsl_ok(s: str) -> bool:
    """FSL strings hold no control characters other than tab, no U+FFFE/U+FFFF (E0016)."""
    return uncarried(s) is None


site_text = hostile_text.filter(fsl_ok)


def fsl_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


HOSTILE_SITE = """
site hostile
switch sw dpid 1 ports 8
host h at sw:1 cores 32 memory 64GiB
edge a at sw:2 default
edge b at sw:3 net 10.0.0.0/8
module enc = encrypt(spi: 300, key: {key})
module dec = decrypt(spi: 301, key: {key})
module idz = ids(rules: {rules}) kind vm image {image}
module pr = process(command: {command})
policy p1 from a match tcp via enc >> idz >> pr
policy p2 from b match udp via dec
"""


def hostile_config(key: str, rules: str, command: str, image: str) -> str:
    c = compile_text(
        HOSTILE_SITE.format(
            key=fsl_string(key), rules=fsl_string(rules), command=fsl_string(command), image=fsl_string(image)
        )
    )
    files = G.render_click(c)
    assert list(files) == ["click/h.click"]
    return files["click/h.click"]


def skeleton(config: ClickConfig | tuple) -> tuple:
    """The element and connection structure, with each configuration string
    reduced to its number of arguments."""
    stmts = config.statements if isinstance(config, ClickConfig) else config

    def cfg(c: str | None) -> int | None:
        return None if c is None else len(split_args(c))

    def elem(e: object) -> tuple:
        if isinstance(e, AnonElement):
            return ("anon", e.class_name, cfg(e.config))
        if isinstance(e, InlineDecl):
            return ("decl", e.name, e.class_name, cfg(e.config))
        return ("ref", e.name)  # type: ignore[attr-defined]

    out = []
    for s in stmts:
        if isinstance(s, Declaration):
            out.append(("declare", s.names, s.class_name, cfg(s.config)))
        elif isinstance(s, Chain):
            out.append(("chain", tuple((elem(ep.element), ep.in_port, ep.out_port) for ep in s.endpoints)))
        elif isinstance(s, ElementClassDef):
            out.append(("class", s.name, s.formals, skeleton(s.body)))
        else:
            out.append((type(s).__name__,))
    return tuple(out)


BENIGN = hostile_config("0123456789abcdef", "rules.txt", "run-it", "image.qcow2")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=site_text, rules=site_text, command=site_text, image=site_text, pad=st.booleans())
def test_hostile_strings_change_no_structure(key: str, rules: str, command: str, image: str, pad: bool) -> None:
    if pad:  # a key of exactly 16 printable ASCII bytes is used as written: quoted into the configuration
        head = ""
        for ch in key:
            if len((head + ch).encode()) > 16:
                break
            head += ch
        key = head + "x" * (16 - len(head.encode()))
    command = "run " + shlex.quote(command)  # fsc checks that a command splits into arguments
    text = hostile_config(key, rules, command, image)
    assert check_config(text) == []
    assert skeleton(parse_config(text)) == skeleton(parse_config(BENIGN))
    enc, _ = E._crypto_keys(key)
    assert enc in text
    if len(key.encode()) == 16 and all(" " <= c <= "~" for c in key):
        assert enc == G.quote(key) and click_unquote(enc) == key
    for s in (rules, command):
        assert G.quote(s) in text  # in a comment, escaped: no newline can end it early


def test_templates_refuse_unescaped_text() -> None:
    with pytest.raises(TypeError, match="unescaped"):
        G.render_template(
            "monitor.click.j2", {"inst": "x; Discard", "cname": G.Raw("i_x"), "cls": G.Raw("I_x"), "sink": False}
        )


def test_names_are_click_identifiers_and_distinct() -> None:
    c = compile_text("""
site names
switch sw dpid 1 ports 8
host h at sw:1 cores 32 memory 64GiB
edge a at sw:2 default
edge b at sw:3 net 10.0.0.0/8
module a-b = monitor()
module a_b = monitor()
module ids_2 = monitor()
module ids = monitor() replicas 2
module Discard = monitor()
policy p1 from a match tcp via a-b >> a_b >> ids_2 >> ids >> Discard
""")
    text = G.render_click(c)["click/h.click"]
    assert check_config(text) == []
    decls = re.findall(r"^(i_\w+) :: (I_\w+);", text, re.M)
    names = [d[0] for d in decls]
    assert len(names) == len(set(names)) == 6
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names)
    assert "i_Discard :: I_Discard;" in text


# ---------------------------------------------------------------- decisions on packet bytes

SYNTHETIC = """
site syn
switch sw dpid 1 ports 16
host h at sw:1 cores 32 memory 64GiB
edge a at sw:2 default
edge b at sw:3 net 10.0.0.0/8
module fwv = firewall(deny: vlan 20 and tcp and dst port 80 or ether src 02:00:00:00:00:01,
                      allow: tcp or udp and dscp 46 or ip6 and dst net 2001:db8::/32)
module clv = classify(v: vlan 30, w: dst net 10.1.0.0/16 and udp and src port 1000..1003,
                      x: ip6 and src port 22..23)
module fwm = firewall(deny: src net 10.0.0.0/8 and dst port 1024..2047 or ether dst 02:00:00:00:00:02,
                      allow: ip and dscp 10 or icmp6)
policy p1 from a match tcp via fwv >> clv >> fwm
"""


def decision_modules() -> list:
    mods = []
    for path in EXAMPLES:
        mods += [m for m in compiled(path).site.modules if m.type in ("firewall", "classify") and m.kind == "click"]
    mods += [m for m in compile_text(SYNTHETIC).site.modules]
    return mods


MODULES = decision_modules()
SWAPS = (("eth_src", "eth_dst"), ("ipv4_src", "ipv4_dst"), ("ipv6_src", "ipv6_dst"), ("tp_src", "tp_dst"))


def swapped(p: dict) -> dict:
    q = dict(p)
    for a, b in SWAPS:
        q[a], q[b] = p[b], p[a]
    return q


def model(m, p: dict) -> str:
    def has(space: HeaderSpace) -> bool:
        return space.contains({**p, "in_edge": 0})

    if m.type == "firewall":
        deny, allow = E.module_param(m, "deny"), E.module_param(m, "allow")
        if deny is not None and has(deny):
            return "drop"
        if allow is not None and not has(allow):
            return "drop"
        return "[0] output"
    for j, (_, space) in enumerate(m.labels):
        if has(space):
            return f"[{j}] output"
    return f"[{len(m.labels)}] output"


def frame(p: dict, ihl: int, pcp: int) -> bytes:
    b = p["eth_dst"].to_bytes(6, "big") + p["eth_src"].to_bytes(6, "big")
    if p["vlan_vid"] & 0x1000:
        b += b"\x81\x00" + ((pcp << 13) | (p["vlan_vid"] & 0xFFF)).to_bytes(2, "big")
    b += p["eth_type"].to_bytes(2, "big")
    l4 = p["tp_src"].to_bytes(2, "big") + p["tp_dst"].to_bytes(2, "big") + bytes(16)
    if p["eth_type"] == 0x0800:
        b += bytes([0x40 | ihl, p["ip_dscp"] << 2, 0, 100, 0, 1, 0x40, 0, 64, p["ip_proto"], 0, 0])
        b += p["ipv4_src"].to_bytes(4, "big") + p["ipv4_dst"].to_bytes(4, "big") + bytes(4 * (ihl - 5)) + l4
    elif p["eth_type"] == 0x86DD:
        b += ((6 << 28) | (p["ip_dscp"] << 22) | 0x12345).to_bytes(4, "big") + bytes([0, 60, p["ip_proto"], 64])
        b += p["ipv6_src"].to_bytes(16, "big") + p["ipv6_dst"].to_bytes(16, "big") + l4
    return b + bytes(max(0, 128 - len(b)))


def classifier_match(pattern: str, data: bytes) -> bool:
    """Click's Classifier: every clause OFF/VALUE[%MASK] (or !clause) holds."""
    if pattern == "-":
        return True
    for clause in pattern.split():
        neg = clause.startswith("!")
        off, _, rest = clause.lstrip("!").partition("/")
        val, _, mask = rest.partition("%")
        vb = bytes.fromhex(val)
        mb = bytes.fromhex(mask) if mask else b"\xff" * len(vb)
        o = int(off)
        ok = all(data[o + i] & mb[i] == vb[i] & mb[i] for i in range(len(vb)))
        if ok == neg:
            return False
    return True


def _mac(s: str) -> int:
    return int(s.replace(":", ""), 16)


def term_match(t: str, p: dict) -> bool:
    """One primitive of the IPFilter syntax that the generator writes, with
    Click's meaning (ports: TCP or UDP only)."""
    if t in PROTOS:
        return p["ip_proto"] == PROTOS[t]
    if m := re.fullmatch(r"ip proto (\d+)", t):
        return p["ip_proto"] == int(m[1])
    if m := re.fullmatch(r"ip proto & (\d+) == (\d+)", t):
        return p["ip_proto"] & int(m[1]) == int(m[2])
    if m := re.fullmatch(r"ip dscp (\d+)", t):
        return p["ip_dscp"] == int(m[1])
    if m := re.fullmatch(r"ip dscp & (\d+) == (\d+)", t):
        return p["ip_dscp"] & int(m[1]) == int(m[2])
    if m := re.fullmatch(r"(src|dst) ether host ([0-9a-f:]+)", t):
        return p[f"eth_{m[1]}"] == _mac(m[2])
    if m := re.fullmatch(r"(src|dst) ether host & ([0-9a-f:]+) == ([0-9a-f:]+)", t):
        return p[f"eth_{m[1]}"] & _mac(m[2]) == _mac(m[3])
    if m := re.fullmatch(r"(src|dst) host ([\d.]+)", t):
        return p[f"ipv4_{m[1]}"] == int(ipaddress.IPv4Address(m[2]))
    if m := re.fullmatch(r"(src|dst) net ([\d.]+)/(\d+)", t):
        mask = (0xFFFFFFFF << (32 - int(m[3]))) & 0xFFFFFFFF
        return p[f"ipv4_{m[1]}"] & mask == int(ipaddress.IPv4Address(m[2]))
    if m := re.fullmatch(r"(src|dst) net ([\d.]+) mask ([\d.]+)", t):
        return p[f"ipv4_{m[1]}"] & int(ipaddress.IPv4Address(m[3])) == int(ipaddress.IPv4Address(m[2]))
    if m := re.fullmatch(r"(src|dst) port (\d+)", t):
        return p["ip_proto"] in (6, 17) and p[f"tp_{m[1]}"] == int(m[2])
    if m := re.fullmatch(r"(src|dst) port & (\d+) == (\d+)", t):
        return p["ip_proto"] in (6, 17) and p[f"tp_{m[1]}"] & int(m[2]) == int(m[3])
    raise AssertionError(f"unexpected IPFilter primitive {t!r}")


PROTOS = {"icmp": 1, "tcp": 6, "udp": 17}


def expr_match(e: str, p: dict) -> bool:
    e = " ".join(e.split())
    if e in ("-", "true"):
        return True
    if e == "false":
        return False
    if e.startswith("("):
        return any(expr_match(part.strip()[1:-1], p) for part in e.split(" || "))
    return all(term_match(t, p) for t in e.split(" && "))


def decide(d: E.Decision, p: dict, ihl: int, pcp: int) -> str:
    data = frame(p, ihl, pcp)
    is_v4 = classifier_match("12/0800", data) or classifier_match("12/8100 16/0800", data)
    if d.v4 is not None and is_v4:
        args = split_args(d.v4["args"])
        if d.v4["element"] == "IPFilter":
            for a in args:
                action, _, e = a.partition(" ")
                if expr_match(e, p):
                    return "[0] output" if action == "allow" else "drop"
            return "drop"
        for k, a in enumerate(args):
            if expr_match(a, p):
                return d.v4["targets"][k]
        return "drop"
    if d.l2_decl is None:
        return d.rest
    pats = split_args(d.l2_decl[d.l2_decl.index("(") + 1 : d.l2_decl.rindex(")")])
    for k, pat in enumerate(pats):
        if classifier_match(pat, data):
            return d.l2_targets[k]
    return "drop"


def point_in(m, data: st.DataObject) -> dict:
    """A well-formed packet, most of the time inside one cube of the module."""
    spaces = [s for _, s in m.params if isinstance(s, HeaderSpace)] + [s for _, s in m.labels]
    cubes = [c for s in spaces for c in s.cubes]
    base = {}
    if cubes and data.draw(st.integers(0, 4)):
        c = data.draw(st.sampled_from(cubes))
        rnd = data.draw(st.integers(0, (1 << DEFAULT_LAYOUT.width) - 1))
        base = DEFAULT_LAYOUT.unpack((c.value | (rnd & ~c.mask)) & ((1 << DEFAULT_LAYOUT.width) - 1))
    else:
        base = DEFAULT_LAYOUT.unpack(data.draw(st.integers(0, (1 << DEFAULT_LAYOUT.width) - 1)))
    p = {
        k: base[k]
        for k in ("eth_src", "eth_dst", "ip_dscp", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "tp_src", "tp_dst")
    }
    et = base["eth_type"]
    if et not in (0x0800, 0x86DD, 0x0806):
        et = data.draw(st.sampled_from([0x0800, 0x86DD, 0x0806]))
    p["eth_type"] = et
    vid = base["vlan_vid"]
    p["vlan_vid"] = 0 if not vid & 0x1000 else 0x1000 | (vid & 0xFFF)
    p["ip_proto"] = base["ip_proto"] if et != 0x0806 else 0
    if p["ip_proto"] not in (6, 17) and data.draw(st.booleans()):
        p["ip_proto"] = data.draw(st.sampled_from([1, 6, 17, 58]))
    if et != 0x0800:
        p["ipv4_src"] = p["ipv4_dst"] = 0
    if et != 0x86DD:
        p["ipv6_src"] = p["ipv6_dst"] = 0
    if et == 0x0806:
        p["ip_dscp"] = 0
    if p["ip_proto"] not in (6, 17):
        p["tp_src"] = p["tp_dst"] = 0
    return p


@pytest.mark.parametrize("m", MODULES, ids=[f"{m.name}-{m.type}-{k}" for k, m in enumerate(MODULES)])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_rules_decide_as_the_model(m, data: st.DataObject) -> None:
    inst = E.Instance(m.name, m, "i_x", "I_x", [Step(3, m.name, m.name, (), False), Step(4, m.name, m.name, (), True)])
    fwd, rev = E._decisions(inst)
    p = point_in(m, data)
    ihl = data.draw(st.sampled_from([5, 5, 6, 15]))
    pcp = data.draw(st.integers(0, 7))
    assert decide(fwd, p, ihl, pcp) == model(m, p)
    assert decide(rev, p, ihl, pcp) == model(m, swapped(p))


def test_limitations_are_reported() -> None:
    c = compile_text("""
site lim
switch sw dpid 1 ports 8
host h at sw:1 cores 32 memory 64GiB
edge a at sw:2 default
edge b at sw:3 net 10.0.0.0/8
module lb6 = loadbalance(vip: 2001:db8::1, backends: {2001:db8::2})
module n6 = nat(to: 2001:db8::9)
module t6 = tunnel(remote: 2001:db8::1, local: 2001:db8::2)
module fast = ratelimit(rate: 40Gbps, burst: 1MiB)
policy p1 from a via lb6 >> n6 >> t6 >> fast
""")
    notes = G.click_limitations(c.site)
    assert len(notes) == 4
    text = G.render_click(c)["click/h.click"]
    assert check_config(text) == []
    for note in notes:
        assert note in text
