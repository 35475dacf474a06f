"""`click/HOST.click`: the Click configuration of every module host.

One file per host that has any placed instance (of any kind: the plumbing of
`process` and `vm` instances is part of the host's Click configuration).

The host's switch-facing interface is ``eth0``: the host's *first* switch
port (``HostPlan.port``), which is also the port the switch steers to.  What
the host does with a packet (``compiler.steering.hostplan``):

* Packets arrive from the switch with an outer 802.1Q tag whose VLAN id is a
  steering tag.  ``steer`` (a ``Classifier`` on the raw frame, PCP bits
  ignored: the PCP bit 2 marks the version of a consistent update) picks the
  step; ``VLANDecap`` strips the outer tag only, so a customer's own VLAN tag
  rides on inside the frame.
* Each step enters its instance.  An instance is one ``elementclass`` (its
  state -- counters, NAT mappings, token buckets -- is shared by every step
  that visits it).  When several steps visit one Click instance, the step
  entry paints the packet (``Paint``) and a ``PaintSwitch`` per instance
  output hands each packet to the next hop of its own step (an instance of
  more than 255 steps paints a second byte too, which picks a group of 255
  steps first: ``_grouped``).
* Each output then goes to the next step on this host (no trip to the
  switch), back to the switch re-tagged (``VLANEncap(VLAN_ID tag)`` ->
  ``Queue`` -> ``ToDevice``), or into ``Discard``.
* ``vm`` and ``process`` instances (and ``ids``/``dpi``, which Click cannot
  run) are reached over their own tap device (``tap_names``: ``fs-bl``,
  ``fs-ids.2``, the names of ``backends.emit.vm.generate.tap_name``): the host
  sends each packet tagged with its step's VLAN id, the module sends it back
  on the same device with that tag and the output index (``out`` = 0,
  ``alert`` = 1, ...) in the tag's PCP bits.

Header-space matches (firewall ``allow``/``deny``, classify labels) become
``IPFilter``/``IPClassifier`` rules for IPv4, one rule per cube; IPv6 (which
those elements cannot read) and customer-VLAN matches become raw
``Classifier`` patterns on the frame.  Reverse steps judge the packet with
source and destination swapped (the rules are swapped).  Port rules match
first fragments only (as IPFilter does); IPv6 extension headers are not
walked (ports and protocol are read right after the fixed header).

Known limits (``click_limitations`` lists the site-dependent ones): Click's
rewriters, IPEncap and IPsec elements are IPv4-only (IPv6 packets pass those
modules unchanged); ``encrypt`` builds ESP tunnel mode with outer source
0.0.0.0; a re-tagged packet leaves with PCP 0 (the reserved version bit is
not carried through the host); ``ratelimit`` is a policer.

Every name that reaches Click is a generated identifier (``[A-Za-z0-9_]``);
every user string is a Click double-quoted string (``quote``).  Templates
only get data already marked as Click text (``Raw``); ``_render`` refuses
anything else.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from backends.emit.click import labels as LB
from backends.emit.vm.generate import tap_name
from compiler import ir
from compiler.check.catalogue import CATALOGUE
from compiler.headerspace.space import DEFAULT_LAYOUT, HeaderSpace
from compiler.lowering import tables as T
from compiler.steering.hostplan import HostPlan, Next, Step

TEMPLATES = Path(__file__).resolve().parent / "templates"
IFACE = "eth0"  # the host's first switch port
QUEUE = 1000  # packets per output queue (Click's default capacity)
MAX_PAINT = 255  # steps one Paint tells apart: colours 0..254 (255 means "every output" to PaintSwitch)
GROUP_ANNO = 18  # a second paint byte for instances of more than MAX_PAINT steps (else only label moves use it)
ETH_IP4, ETH_IP6 = 0x0800, 0x86DD
FAM_IP4, FAM_IP6, FAM_OTHER = "ip4", "ip6", "other"
IP4_FIELDS = ("ipv4_src", "ipv4_dst")
IP6_FIELDS = ("ipv6_src", "ipv6_dst")
IP_FIELDS = ("ip_dscp", "ip_proto", *IP4_FIELDS, *IP6_FIELDS, "tp_src", "tp_dst")
SWAP = {"eth_src": "eth_dst", "ipv4_src": "ipv4_dst", "ipv6_src": "ipv6_dst", "tp_src": "tp_dst"}
SWAP.update({v: k for k, v in list(SWAP.items())})
EXTERNAL_KINDS = ("vm", "process")
EXTERNAL_TYPES = ("ids", "dpi", "process")  # no Click implementation: always reached over a tap
MAX_EXTERNAL_OUTPUTS = 8  # the output index rides in the 3 PCP bits

Fields = dict[str, tuple[int, int]]


class ClickUnsupported(ValueError):
    """Something a site asks for that a Click configuration cannot express."""


# ---------------------------------------------------------------- escaping


class Raw(str):
    """Text that is already valid Click (generated names, numbers, quoted strings)."""


def quote(s: str) -> Raw:
    """A Click double-quoted configuration string holding exactly ``s``.

    Inside double quotes Click expands backslash escapes (``\\\\``, ``\\"``,
    ``\\$``, ``\\<hex>``); everything outside printable ASCII is written as
    ``\\<hex>`` bytes (UTF-8), so the result has no newline, no comment and
    no unbalanced quote, whatever ``s`` holds.
    """
    out = ['"']
    for ch in str(s):
        if ch in '\\"$':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append("\\<" + ch.encode("utf-8", "surrogatepass").hex() + ">")
    out.append('"')
    return Raw("".join(out))


def hex_string(data: bytes) -> Raw:
    """Raw bytes as a Click double-quoted string."""
    return Raw('"\\<' + data.hex() + '>"')


_SITE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(#[0-9]+)?").fullmatch


def site_name(s: str) -> Raw:
    """A name from the site for a comment: as written when it is an FSL
    identifier (or instance name), else quoted."""
    return Raw(s) if _SITE_NAME(s) else quote(s)


def _word(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", s)


def _check(value: Any, where: str = "context") -> None:
    """Template data must be Click text already: ``Raw`` strings, numbers,
    and containers or dataclasses of them.  A plain ``str`` (user data that
    skipped ``quote`` or name generation) is refused.  The walk that names
    where the bad value is runs only once :func:`_clean` has found one."""
    if not _clean(value):
        _explain(value, where)


def _clean(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, Raw)):
        return True
    if isinstance(value, str):
        return False
    if isinstance(value, Mapping):
        return all(_clean(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_clean(v) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        return all(_clean(getattr(value, k)) for k in value.__dataclass_fields__)
    return False


def _explain(value: Any, where: str) -> None:
    """Raise for the first value :func:`_clean` refuses, with its path."""
    if value is None or isinstance(value, (bool, int, Raw)):
        return
    if isinstance(value, str):
        raise TypeError(f"refusing to put unescaped text {value!r} ({where}) into a Click configuration")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _explain(v, f"{where}.{k}")
        return
    if isinstance(value, (list, tuple)):
        for k, v in enumerate(value):
            _explain(v, f"{where}[{k}]")
        return
    if hasattr(value, "__dataclass_fields__"):
        for k in value.__dataclass_fields__:
            _explain(getattr(value, k), f"{where}.{k}")
        return
    raise TypeError(f"refusing to put {type(value).__name__} ({where}) into a Click configuration")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(template: str, ctx: dict[str, Any]) -> str:
    _check(ctx)
    return _env().get_template(template).render(**ctx)


# ---------------------------------------------------------------- names


def _unique(names: Iterable[str], make: Any) -> dict[str, str]:
    """Injective map of ``names`` through ``make``; collisions get ``_2``, ``_3``."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for n in sorted(set(names)):
        base = make(n)
        cand, k = base, 2
        while cand in used:
            cand, k = f"{base}_{k}", k + 1
        used.add(cand)
        out[n] = cand
    return out


def tap_names(site: ir.Site) -> dict[str, str]:
    """The tap device of every instance: ``backends.emit.vm.generate.tap_name``
    (NIC 0), the name the VM domain and the process manifest use too
    (``fs-bl``, ``fs-ids.2``; at most 15 characters of ``[A-Za-z0-9_.-]``)."""
    out = {i: tap_name(i) for m in site.modules for i in m.instance_names()}
    for name in out.values():
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", name):  # pragma: no cover - tap_name guarantees it
            raise ClickUnsupported(f"tap device name {name!r} cannot be written in a Click configuration")
    return out


# ---------------------------------------------------------------- header space -> Click


def _fields(space: HeaderSpace) -> list[Fields]:
    return [c.cared_fields(DEFAULT_LAYOUT) for c in space.cubes]


def _swap(f: Fields) -> Fields:
    return {SWAP.get(k, k): v for k, v in f.items()}


def _family_view(f: Fields, fam: str) -> Fields | None:
    """The constraints of cube ``f`` on packets of family ``fam``, or None
    when no packet of that family is in it.  Fields a family does not carry
    are 0 in the model (``headerspace.well_formed``)."""
    out = dict(f)
    et = out.pop("eth_type", None)
    out.pop("in_edge", None)  # not a header: never in a module's match
    absent = {FAM_IP4: IP6_FIELDS, FAM_IP6: IP4_FIELDS, FAM_OTHER: IP_FIELDS}[fam]
    for name in absent:
        if name in out:
            v, _ = out.pop(name)
            if v:
                return None
    if fam == FAM_OTHER:
        if et is not None:
            v, m = et
            if m == 0xFFFF and v in (ETH_IP4, ETH_IP6):
                return None
            out["eth_type"] = et
        return out
    if et is not None and ((ETH_IP4 if fam == FAM_IP4 else ETH_IP6) & et[1]) != et[0]:
        return None
    return out


def _full(name: str) -> int:
    return (1 << DEFAULT_LAYOUT.field(name).width) - 1


def _mac(x: int) -> str:
    return ":".join(f"{b:02x}" for b in x.to_bytes(6, "big"))


def _ip4_term(sd: str, v: int, m: int) -> str:
    addr = ipaddress.IPv4Address(v)
    if m == 0xFFFFFFFF:
        return f"{sd} host {addr}"
    inv = (~m) & 0xFFFFFFFF
    if inv & (inv + 1) == 0:  # a prefix
        return f"{sd} net {addr}/{32 - inv.bit_length()}"
    return f"{sd} net {addr} mask {ipaddress.IPv4Address(m)}"


PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}


def ipfilter_expr(f: Fields) -> str:
    """IPFilter/IPClassifier syntax for an IPv4 cube (its IPv4 view)."""
    terms = []
    if "ip_proto" in f:
        v, m = f["ip_proto"]
        if m == 0xFF:
            terms.append(PROTO_NAMES.get(v, f"ip proto {v}"))
        else:
            terms.append(f"ip proto & {m} == {v}")
    for name, sd in (("eth_src", "src"), ("eth_dst", "dst")):
        if name in f:
            v, m = f[name]
            if m == _full(name):
                terms.append(f"{sd} ether host {_mac(v)}")
            else:
                terms.append(f"{sd} ether host & {_mac(m)} == {_mac(v)}")
    if "ip_dscp" in f:
        v, m = f["ip_dscp"]
        terms.append(f"ip dscp {v}" if m == 0x3F else f"ip dscp & {m} == {v}")
    for name, sd in (("ipv4_src", "src"), ("ipv4_dst", "dst")):
        if name in f:
            terms.append(_ip4_term(sd, *f[name]))
    for name, sd in (("tp_src", "src"), ("tp_dst", "dst")):
        if name in f:
            v, m = f[name]
            terms.append(f"{sd} port {v}" if m == 0xFFFF else f"{sd} port & {m} == {v}")
    unknown = set(f) - {"ip_proto", "eth_src", "eth_dst", "ip_dscp", "ipv4_src", "ipv4_dst", "tp_src", "tp_dst"}
    if unknown:  # pragma: no cover - guarded by the caller (vlan forces the frame path)
        raise ClickUnsupported(f"IPFilter cannot match {sorted(unknown)}")
    return " && ".join(terms) if terms else "true"


def _clauses(offset: int, nbytes: int, value: int, mask: int) -> list[str]:
    """Classifier clauses ``OFF/VALUE%MASK`` for a field of ``nbytes`` at
    ``offset``, in pieces of at most 4 bytes, skipping uncared pieces."""
    out = []
    vb, mb = value.to_bytes(nbytes, "big"), mask.to_bytes(nbytes, "big")
    for i in range(0, nbytes, 4):
        vs, ms = vb[i : i + 4], mb[i : i + 4]
        if not any(ms):
            continue
        # trim uncared bytes at both ends
        lo, hi = 0, len(ms)
        while not ms[lo]:
            lo += 1
        while not ms[hi - 1]:
            hi -= 1
        vs, ms = vs[lo:hi], ms[lo:hi]
        vs = bytes(a & b for a, b in zip(vs, ms))
        text = f"{offset + i + lo}/{vs.hex()}"
        if ms != b"\xff" * len(ms):
            text += f"%{ms.hex()}"
        out.append(text)
    return out


def frame_patterns(f: Fields, families: tuple[str, ...]) -> list[str]:
    """Classifier patterns on the frame (outer tag already stripped) for cube
    ``f`` restricted to ``families``: one pattern per tagging and family.

    IPv4 transport ports are read at ``14 + 4 * IHL`` for every header
    length (IHL 5..15) and first fragments only, as IPFilter does; IPv6
    ports right after the fixed header (extension headers are not walked).
    """
    out: list[str] = []
    vv, vm = f.get("vlan_vid", (0, 0))
    l2 = []
    for name, off in (("eth_dst", 0), ("eth_src", 6)):
        if name in f:
            l2 += _clauses(off, 6, *f[name])
    needs_family = any(n in f for n in ("eth_type", *IP_FIELDS))
    for tagged in (False, True):
        if vm & 0x1000 and bool(vv & 0x1000) != tagged:
            continue
        if not tagged and vv & vm & 0x0FFF:
            continue  # untagged packets have VLAN id 0
        tag = ["12/8100"] + _clauses(14, 2, vv & 0x0FFF, vm & 0x0FFF) if tagged else ["!12/8100"]
        if not needs_family:
            if not vm:  # tagging does not matter: one pattern
                out.append(" ".join(l2) or "-")
                break
            out.append(" ".join(l2 + tag))
            continue
        L = 18 if tagged else 14
        et = L - 2
        for fam in families:
            g = _family_view(f, fam)
            if g is None:
                continue
            base = l2 + (["12/8100"] + _clauses(14, 2, vv & 0x0FFF, vm & 0x0FFF) if tagged else [])
            if fam == FAM_OTHER:
                p = base + ([] if tagged else ["!12/8100"]) + [f"!{et}/0800", f"!{et}/86dd"]
                if "eth_type" in g:
                    p += _clauses(et, 2, *g["eth_type"])
                out.append(" ".join(p))
                continue
            if fam == FAM_IP6:
                p = base + [f"{et}/86dd"]
                if "ip_dscp" in g:
                    p += _clauses(L, 2, g["ip_dscp"][0] << 6, g["ip_dscp"][1] << 6)
                if "ip_proto" in g:
                    p += _clauses(L + 6, 1, *g["ip_proto"])
                for name, off in (("ipv6_src", 8), ("ipv6_dst", 24)):
                    if name in g:
                        p += _clauses(L + off, 16, *g[name])
                for name, off in (("tp_src", 40), ("tp_dst", 42)):
                    if name in g:
                        p += _clauses(L + off, 2, *g[name])
                out.append(" ".join(p))
                continue
            p = base + [f"{et}/0800"]
            if "ip_dscp" in g:
                p += _clauses(L + 1, 1, g["ip_dscp"][0] << 2, g["ip_dscp"][1] << 2)
            if "ip_proto" in g:
                p += _clauses(L + 9, 1, *g["ip_proto"])
            for name, off in (("ipv4_src", 12), ("ipv4_dst", 16)):
                if name in g:
                    p += _clauses(L + off, 4, *g[name])
            if "tp_src" in g or "tp_dst" in g:
                for ihl in range(5, 16):
                    q = p + [f"{L}/{0x40 | ihl:02x}", f"{L + 6}/0000%1fff"]
                    for name, off in (("tp_src", 0), ("tp_dst", 2)):
                        if name in g:
                            q += _clauses(L + 4 * ihl + off, 2, *g[name])
                    out.append(" ".join(q))
            else:
                out.append(" ".join(p))
    return out


# ---------------------------------------------------------------- decisions


@dataclass
class Rule:
    fields: Fields
    target: int | None  # output port of the instance; None: drop


@dataclass
class Decision:
    """One judging input of a firewall or classifier instance (template data)."""

    name: Raw
    port: int
    title: Raw
    v4: dict | None  # {"element", "args", "targets"}: IPv4 through IPFilter/IPClassifier
    l2_decl: Raw | None  # the frame Classifier, declared inline
    l2_targets: list[Raw]
    rest: Raw  # where packets that the IPv4 element does not take go


def _target(t: int | None) -> Raw:
    return Raw("drop") if t is None else Raw(f"[{t}] output")


def _args(items: list[str], comments: list[str] | None = None, indent: str = "      ") -> Raw:
    """Configuration arguments, one per line, each with an optional comment;
    the closing parenthesis goes on a line of its own (after the comments)."""
    lines = []
    for k, item in enumerate(items):
        sep = "," if k < len(items) - 1 else ""
        note = f"  // {comments[k]}" if comments and comments[k] else ""
        lines.append(f"{indent}{item}{sep}{note}")
    return Raw("\n" + "\n".join(lines) + "\n" + indent[:-4])


def build_decision(
    name: str, port: int, title: str, rules: list[Rule], default: int | None, mode: str, labels: tuple[str, ...] = ()
) -> Decision:
    """``mode``: "filter" (firewall: IPFilter, allow = output 0) or "classify"
    (IPClassifier: one pattern per label, then ``-``)."""
    v4_ok = not any("vlan_vid" in r.fields and _family_view(r.fields, FAM_IP4) is not None for r in rules)
    v4 = None
    if v4_ok:
        if mode == "filter":
            args, notes = [], []
            for r in rules:
                g = _family_view(r.fields, FAM_IP4)
                if g is not None:
                    args.append(f"{'allow' if r.target == 0 else 'drop'} {ipfilter_expr(g)}")
                    notes.append("")
            args.append("allow -" if default == 0 else "drop -")
            notes.append("no rule matched")
            v4 = {"element": Raw("IPFilter"), "args": _args(args, notes), "targets": [_target(0)]}
        else:
            pats, notes, targets = [], [], []
            for j, label in enumerate(labels):
                exprs = [
                    ipfilter_expr(g)
                    for r in rules
                    if r.target == j
                    for g in [_family_view(r.fields, FAM_IP4)]
                    if g is not None
                ]
                if not exprs:
                    pats.append("false")
                elif len(exprs) == 1:
                    pats.append(exprs[0])
                else:
                    pats.append("\n        || ".join(f"({e})" for e in exprs))
                notes.append(label)
                targets.append(_target(j))
            pats.append("-")
            notes.append("else")
            targets.append(_target(default))
            v4 = {"element": Raw("IPClassifier"), "args": _args(pats, notes), "targets": targets}
    families = (FAM_IP6, FAM_OTHER) if v4_ok else (FAM_IP4, FAM_IP6, FAM_OTHER)
    pats, notes, targets = [], [], []
    for r in rules:
        for p in frame_patterns(r.fields, families):
            pats.append(p)
            notes.append(
                ("allow" if r.target == 0 else "deny")
                if mode == "filter"
                else labels[r.target]
                if r.target is not None
                else ""
            )
            targets.append(_target(r.target))
    l2_decl = None
    if pats:
        pats.append("-")
        notes.append("no rule matched" if mode == "filter" else "else")
        targets.append(_target(default))
        l2_decl = Raw(f"{name}_l2 :: Classifier({_args(pats, notes)})")
        rest = Raw(f"{name}_l2")
    else:
        rest = _target(default)
    return Decision(Raw(name), port, Raw(title), v4, l2_decl, targets if pats else [], rest)


# ---------------------------------------------------------------- instances


@dataclass
class Instance:
    name: str  # as in the plan (`ids#2`)
    module: ir.Module
    cname: str  # Click element name
    cls: str  # Click element class name
    steps: list[Step] = field(default_factory=list)
    external: bool = False
    tap_vids: list[int] = field(default_factory=list)  # per step: its VLAN id on the tap (external only)


def _key(s: Step) -> tuple[bool, int]:
    """A step's identity on the host: VLAN ids and MPLS labels are separate spaces."""
    return (s.label, s.tag)


def _entry(label: bool, tag: int) -> str:
    """The step entry element: ``t4`` for VLAN id 4, ``m4`` for MPLS label 4."""
    return f"m{tag}" if label else f"t{tag}"


def _what(s: Step | Next) -> str:
    return f"label {s.tag}" if s.label else f"tag {s.tag}"


def _is_external(m: ir.Module) -> bool:
    return m.kind in EXTERNAL_KINDS or m.type in EXTERNAL_TYPES


def _param(m: ir.Module, name: str) -> Any:
    return next((v for k, v in m.params if k == name), None)


def _judges(inst: Instance) -> list[bool]:
    """Which directions (False: forward, True: reverse) have their own input."""
    dirs = sorted({s.reverse for s in inst.steps})
    return dirs


def _input_port(inst: Instance, step: Step, judges: list[bool] | None = None) -> int:
    """``judges``: :func:`_judges` of ``inst`` when the caller has it (a
    scan of every step of the instance, per step would be quadratic)."""
    m = inst.module
    if inst.external:
        return 0
    if m.type in ("firewall", "classify", "nat", "loadbalance"):
        return (judges if judges is not None else _judges(inst)).index(step.reverse)
    return 0


def _crypto_keys(key: str) -> tuple[Raw, Raw]:
    """The 16-byte encryption and authentication keys Click's IPsec elements
    need (``RadixIPsecLookup`` SA entries).  A key of exactly 16 bytes is
    used as the encryption key as written; any other key is stretched with
    SHA-256.  The authentication key is always derived (SHA-256 of a label
    and the key), so one FSL key configures both ends identically."""
    raw = key.encode("utf-8", "surrogatepass")
    enc = (
        quote(key)
        if len(raw) == 16 and all(0x20 <= b < 0x7F for b in raw)
        else hex_string(hashlib.sha256(b"fsc-esp-encrypt\0" + raw).digest()[:16])
    )
    auth = hex_string(hashlib.sha256(b"fsc-esp-auth\0" + raw).digest()[:16])
    return enc, auth


def _plain(s: str) -> Raw:
    """Short text from the site (a rate, a size) for a comment."""
    return Raw(s) if re.fullmatch(r"[A-Za-z0-9.]+", s) else quote(s)


def _rate_args(m: ir.Module) -> dict:
    """A policer: RatedSplitter (packets/s) or BandwidthRatedSplitter
    (bytes/s; Click's bandwidths are 32-bit byte rates, up to ~34 Gbps)."""
    rate, burst = _param(m, "rate"), _param(m, "burst")
    per_second = float(rate.per_second)
    ctx = {"rate_text": _plain(rate.text), "burst_text": _plain(burst.text)}
    if rate.unit == "pps":
        packets = max(1, -(-burst.bytes // 1500))
        ctx.update(
            element=Raw("RatedSplitter"),
            rate=Raw(str(min(max(1, round(per_second)), 0xFFFFFFFF))),
            burst_kw=Raw("BURST_SIZE"),
            burst=Raw(str(min(packets, 0xFFFFFFFF))),
            pps=True,
        )
    else:
        bytes_per_second = min(max(1, round(per_second / 8)), 0xFFFFFFFF)
        ctx.update(
            element=Raw("BandwidthRatedSplitter"),
            rate=Raw(f"{bytes_per_second}Bps"),
            burst_kw=Raw("BURST_BYTES"),
            burst=Raw(str(min(burst.bytes, 0xFFFFFFFF))),
            pps=False,
        )
    return ctx


def _decisions(inst: Instance) -> list[Decision]:
    m = inst.module
    out = []
    for rev in _judges(inst):
        port = _judges(inst).index(rev)
        name = "rev" if rev else "fwd"
        title = "reverse steps: judged with source and destination swapped" if rev else "forward steps"
        if m.type == "firewall":
            deny, allow = _param(m, "deny"), _param(m, "allow")
            rules = []
            if isinstance(deny, HeaderSpace):
                rules += [Rule(f, None) for f in _fields(deny)]
            if isinstance(allow, HeaderSpace):
                rules += [Rule(f, 0) for f in _fields(allow)]
            default = None if isinstance(allow, HeaderSpace) else 0
            if rev:
                rules = [Rule(_swap(r.fields), r.target) for r in rules]
            out.append(build_decision(name, port, title, rules, default, "filter"))
        else:
            labels = tuple(label for label, _ in m.labels)  # output j is label j, then `else`
            rules = []
            for j, (_, space) in enumerate(m.labels):
                rules += [Rule(_swap(f) if rev else f, j) for f in _fields(space)]
            out.append(build_decision(name, port, title, rules, len(labels), "classify", labels))
    return out


def _ip(addr: Any) -> Raw | None:
    """An IPv4 address as Click text; None for IPv6 (Click's rewriters and
    IPEncap are IPv4-only)."""
    a = ipaddress.ip_address(addr)
    return Raw(str(a)) if a.version == 4 else None


def limitations(m: ir.Module) -> list[str]:
    """What the Click rendering of ``m`` cannot do as the model says."""
    out = []
    if _is_external(m):
        if len(m.outputs) > MAX_EXTERNAL_OUTPUTS:
            out.append(
                f"module `{m.name}`: a {m.kind} module returns its output in 3 PCP bits; "
                f"outputs after the {MAX_EXTERNAL_OUTPUTS}th are never taken"
            )
        return out
    if m.type == "nat" and _ip(_param(m, "to")) is None:
        out.append(f"module `{m.name}`: Click's IPRewriter is IPv4-only; NAT to an IPv6 address is not done")
    if m.type == "loadbalance" and (
        _ip(_param(m, "vip")) is None or any(_ip(b) is None for b in _param(m, "backends"))
    ):
        out.append(f"module `{m.name}`: Click's IPRewriter is IPv4-only; IPv6 load balancing is not done")
    if m.type == "tunnel" and (_ip(_param(m, "local")) is None or _ip(_param(m, "remote")) is None):
        out.append(f"module `{m.name}`: Click's IPEncap is IPv4-only; a tunnel between IPv6 end points is not done")
    if m.type == "ratelimit":
        rate = _param(m, "rate")
        limit = 0xFFFFFFFF if rate.unit == "pps" else 0xFFFFFFFF * 8
        if float(rate.per_second) > limit:
            out.append(
                f"module `{m.name}`: Click's rates are 32-bit ({'packets' if rate.unit == 'pps' else 'bytes'} "
                f"per second); {rate.text} is capped at {limit} {rate.unit}"
            )
    return out


def _filter_ctx(inst: Instance) -> dict[str, Any]:
    decisions = _decisions(inst)
    return {
        "decisions": decisions,
        "needs_drop": any(
            t == "drop" for d in decisions for t in [*(d.v4["targets"] if d.v4 else []), *d.l2_targets, d.rest]
        ),
    }


def _monitor_ctx(inst: Instance) -> dict[str, Any]:
    return {"sink": inst.module.is_sink}


def _ratelimit_ctx(inst: Instance) -> dict[str, Any]:
    return _rate_args(inst.module)


def _rewriter_ctx(inst: Instance) -> dict[str, Any]:
    m = inst.module
    ctx: dict[str, Any] = {"inputs": [(p, rev) for p, rev in enumerate(_judges(inst))]}
    if m.type == "nat":
        ctx["to"] = _ip(_param(m, "to"))
    else:
        vip = _ip(_param(m, "vip"))
        backends = [_ip(b) for b in _param(m, "backends")]
        ok = vip is not None and all(b is not None for b in backends)
        ctx["vip"] = vip if ok else None
        ctx["backends"] = backends if ok else []
    return ctx


def _crypto_ctx(inst: Instance) -> dict[str, Any]:
    enc, auth = _crypto_keys(_param(inst.module, "key"))
    return {"spi": int(_param(inst.module, "spi")), "enc_key": enc, "auth_key": auth}


def _tunnel_ctx(inst: Instance) -> dict[str, Any]:
    local, remote = _ip(_param(inst.module, "local")), _ip(_param(inst.module, "remote"))
    ok = local is not None and remote is not None
    return {"local": local if ok else None, "remote": remote if ok else None}


#: What each module type adds to its Click template's context (the template is the
#: catalogue's); a type without an entry needs only the common context.
TYPE_CONTEXT: dict[str, Callable[[Instance], dict[str, Any]]] = {
    "firewall": _filter_ctx,
    "classify": _filter_ctx,
    "monitor": _monitor_ctx,
    "ratelimit": _ratelimit_ctx,
    "nat": _rewriter_ctx,
    "loadbalance": _rewriter_ctx,
    "encrypt": _crypto_ctx,
    "decrypt": _crypto_ctx,
    "tunnel": _tunnel_ctx,
}


def _class_text(inst: Instance, taps: Mapping[str, str]) -> str:
    m = inst.module
    ctx: dict[str, Any] = {
        "cls": Raw(inst.cls),
        "cname": Raw(inst.cname),
        "inst": site_name(inst.name),
        "module": site_name(m.name),
        "mtype": Raw(m.type),
        "kind": Raw(m.kind),
        "outputs": [(j, site_name(label)) for j, label in enumerate(m.outputs)],
        "queue": QUEUE,
        "limits": [Raw(s.replace("\n", " ")) for s in limitations(m)],
    }
    if inst.external:
        rets = []
        for k, s in enumerate(inst.steps):
            vid = inst.tap_vids[k]
            what = _what(s) + (f" (tap VLAN id {vid})" if s.label else "")
            for j, label in enumerate(m.outputs):
                port = k * len(m.outputs) + j
                if j < MAX_EXTERNAL_OUTPUTS:
                    tci = (j << 13) | vid
                    rets.append(
                        {
                            "pattern": Raw(f"12/8100 14/{tci:04x}%efff"),
                            "port": port,
                            "note": Raw(f"{what}{' (reverse)' if s.reverse else ''}, {site_name(label)}"),
                        }
                    )
                else:
                    rets.append({"pattern": None, "port": port, "note": Raw(f"{what}, {site_name(label)}")})
        pats = [r["pattern"] for r in rets if r["pattern"] is not None]
        notes = [r["note"] for r in rets if r["pattern"] is not None]
        ctx.update(
            tap=Raw(taps[inst.name]),
            tap_labelled=any(s.label for s in inst.steps),
            returns=rets,
            ret_args=_args(pats + ["-"], notes + ["anything else"]) if rets else None,
            image=quote(m.image) if m.image else None,
            command=quote(_param(m, "command")) if _param(m, "command") is not None else None,
            rules=quote(_param(m, "rules")) if _param(m, "rules") is not None else None,
            labels=Raw(", ".join(f"{site_name(label)} = {j}" for j, label in enumerate(m.outputs)) or "none"),
        )
        template = CATALOGUE[m.type].template if m.type in EXTERNAL_TYPES else "external.click.j2"
    else:
        template = CATALOGUE[m.type].template
        fill = TYPE_CONTEXT.get(m.type)
        if fill is not None:
            ctx.update(fill(inst))
    text = _render(template, ctx)
    notes = "".join(f"// NOT DONE: {n}\n" for n in ctx["limits"])
    return notes + text


# ---------------------------------------------------------------- hosts


def _instances(compiled: Any, hp: HostPlan) -> list[Instance]:
    site = compiled.site
    host_of = compiled.host_of()
    placed = sorted(i for i, h in host_of.items() if h == hp.host)
    modules = {i: m for m in site.modules for i in m.instance_names()}
    cnames = _unique(placed, lambda i: "i_" + _word(i))
    out = {}
    for i in placed:
        m = modules[i]
        out[i] = Instance(i, m, cnames[i], "I" + cnames[i][1:], external=_is_external(m))
    for s in hp.steps:
        out[s.instance].steps.append(s)
    for inst in out.values():
        if inst.external:
            try:
                inst.tap_vids = LB.step_tap_vids(inst.steps, compiled.steering.generation)
            except LB.TapFull as err:
                raise ClickUnsupported(str(err)) from None
    return [out[i] for i in placed]


def tap_vids(compiled: Any, hp: HostPlan) -> dict[tuple[bool, int], int]:
    """The VLAN id on its tap of every step of ``hp`` whose instance is
    reached over a tap, by (the step's tag is a label, tag)."""
    return {_key(s): v for inst in _instances(compiled, hp) for s, v in zip(inst.steps, inst.tap_vids)}


def _switch(inst: Instance, output: int) -> str:
    """The PaintSwitch after ``output`` of a painted instance: ``o_X_J``
    (never an instance's ``i_X``; the trailing ``_J`` keeps them distinct)."""
    return f"o_{inst.cname[2:]}_{output}"


def _painted(inst: Instance) -> bool:
    """Several steps share one Click instance: the entries paint, PaintSwitches route."""
    return not inst.external and len(inst.steps) > 1 and bool(inst.module.outputs)


def _grouped(inst: Instance) -> bool:
    """A painted instance with more steps than one paint byte tells apart:
    step ``k`` is painted ``k % MAX_PAINT`` and, in the GROUP_ANNO byte,
    ``k // MAX_PAINT``; each output's PaintSwitch picks the group, then a
    PaintSwitch per group the step (steps are tags: at most 4094, far below
    MAX_PAINT squared)."""
    return _painted(inst) and len(inst.steps) > MAX_PAINT


def _step_note(s: Step) -> str:
    parts = []
    for label, n in s.next:
        label = site_name(label)
        if n.kind == "local":
            parts.append(f"{label} -> {_what(n)} here")
        elif n.kind == "switch":
            parts.append(
                f"{label} -> switch, {_what(n)}"
                + (" (exit)" if not n.label and n.tag & ~(1 << T.GENERATION_TAG_BIT) == T.EXIT_TAG else "")
            )
        else:
            parts.append(f"{label} -> dropped")
    return "; ".join(parts) or "consumed (sink)"


def render_host(compiled: Any, hp: HostPlan, taps: Mapping[str, str]) -> str | None:
    insts = _instances(compiled, hp)
    if not insts:
        return None
    site = compiled.site
    by_step: dict[tuple[bool, int], Instance] = {_key(s): inst for inst in insts for s in inst.steps}
    steps = sorted(by_step.items())  # VLAN ids first, then labels
    vlan_steps = [(tag, inst) for (label, tag), inst in steps if not label]
    label_steps = [(tag, inst) for (label, tag), inst in steps if label]
    vids: set[int] = set()
    lbls: set[int] = set()
    uses_drop = False
    decls: list[Raw] = []
    paint_conns: list[Raw] = []

    def target(n: Next | None) -> Raw:
        nonlocal uses_drop
        if n is None or n.kind == "drop":
            uses_drop = True
            return Raw("drop")
        if n.kind == "switch":
            (lbls if n.label else vids).add(n.tag)
            return Raw(f"lbl_{n.tag}" if n.label else f"vid_{n.tag}")
        if (n.label, n.tag) not in by_step:  # pragma: no cover - the plan always places local steps here
            raise ClickUnsupported(f"host {hp.host}: local {_what(n)} has no step")
        return Raw(_entry(n.label, n.tag))

    inst_decls = []
    for inst in insts:
        if not inst.steps:
            inst_decls.append({"decl": None, "note": site_name(inst.name)})
            continue
        m = inst.module
        n = len(inst.steps)
        painted = _painted(inst)
        inst_decls.append({"decl": Raw(f"{inst.cname} :: {inst.cls};"), "note": site_name(inst.name)})
        if painted:
            for j, label in enumerate(m.outputs):
                if _grouped(inst):
                    decls.append(
                        Raw(
                            f"{_switch(inst, j)} :: PaintSwitch(ANNO {GROUP_ANNO});  // {site_name(label)}: "
                            "to the group of the step that painted the packet"
                        )
                    )
                    decls += [Raw(f"{_switch(inst, j)}_g{g} :: PaintSwitch;") for g in range(-(-n // MAX_PAINT))]
                else:
                    decls.append(
                        Raw(
                            f"{_switch(inst, j)} :: PaintSwitch;  // {site_name(label)}: "
                            "to the step that painted the packet"
                        )
                    )
        for k, s in enumerate(inst.steps):
            entry = _entry(s.label, s.tag)
            if inst.external:
                decls.append(Raw(f"{entry} :: VLANEncap(VLAN_ID {inst.tap_vids[k]});"))
            elif painted:
                decls.append(Raw(f"{entry} :: Paint({k % MAX_PAINT});"))
                if _grouped(inst):
                    decls.append(Raw(f"{entry}_g :: Paint({k // MAX_PAINT}, ANNO {GROUP_ANNO});"))
            else:
                decls.append(Raw(f"{entry} :: Null;"))
    steer_off = len(LB.STEER) if label_steps else 0
    step_blocks = []
    first_at: dict[tuple[int, tuple[bool, int]], int] = {}  # (instance, step key) -> index of its first step
    judges: dict[int, list[bool]] = {}  # instance -> its judged directions
    for inst in insts:
        for k, s in enumerate(inst.steps):
            first_at.setdefault((id(inst), _key(s)), k)
        judges[id(inst)] = _judges(inst)
    for (label, tag), inst in steps:
        m = inst.module
        k = first_at[(id(inst), (label, tag))]
        s = inst.steps[k]
        entry = _entry(label, tag)
        via = f" -> {entry}_g" if _grouped(inst) else ""
        lines = [Raw(f"{entry}{via} -> [{_input_port(inst, s, judges.get(id(inst)))}] {inst.cname};")]
        nxt = dict(s.next)
        painted = _painted(inst)
        for j, out in enumerate(m.outputs):
            if inst.external:
                src = f"{inst.cname} [{k * len(m.outputs) + j}]"
            elif painted and _grouped(inst):
                src = f"{_switch(inst, j)}_g{k // MAX_PAINT} [{k % MAX_PAINT}]"
            elif painted:
                src = f"{_switch(inst, j)} [{k}]"
            else:
                src = f"{inst.cname} [{j}]"
            lines.append(Raw(f"{src} -> {target(nxt.get(out))};  // {site_name(out)}"))
        if label:
            enter = f"labels [{len(step_blocks) - len(vlan_steps)}] -> Strip(4) -> {entry};"
        else:
            enter = f"steer [{steer_off + len(step_blocks)}] -> VLANDecap -> {entry};"
        step_blocks.append(
            {
                "head": Raw(_what(s)),
                "note": Raw(f"{site_name(inst.name)}{' (reverse)' if s.reverse else ''}: {_step_note(s)}"),
                "enter": Raw(enter),
                "lines": lines,
            }
        )
    for inst in insts:
        if _painted(inst):
            paint_conns += [Raw(f"{inst.cname} [{j}] -> {_switch(inst, j)};") for j in range(len(inst.module.outputs))]
        if _painted(inst) and _grouped(inst):
            paint_conns += [
                Raw(f"{_switch(inst, j)} [{g}] -> {_switch(inst, j)}_g{g};")
                for j in range(len(inst.module.outputs))
                for g in range(-(-len(inst.steps) // MAX_PAINT))
            ]
    host = site.host(hp.host)
    steer = [p for p, _ in LB.STEER] if label_steps else []
    notes = [n for _, n in LB.STEER] if label_steps else []
    steer += [f"12/8100 14/{tag:04x}%0fff" for tag, _ in vlan_steps]
    notes += [f"tag {tag}: {site_name(inst.name)}" for tag, inst in vlan_steps]
    steer.append("-")
    notes.append(f"untagged, or not a tag {'or label ' if label_steps else ''}of this host")
    ctx = {
        "site": quote(site.name),
        "host": site_name(hp.host),
        "iface": Raw(IFACE),
        "switch": site_name(hp.switch),
        "port": hp.port,
        "ports": Raw(", ".join(f"{site_name(sw)}:{p}" for sw, p in host.ports)),
        "queue": QUEUE,
        "classes": [Raw(_class_text(i, taps).rstrip("\n")) for i in insts if i.steps],
        "instances": inst_decls,
        "steer": _args(steer, notes, indent="    "),
        "nsteps": len(steer) - 1,
        "steps": step_blocks,
        "decls": decls,
        "paint_conns": paint_conns,
        "vids": sorted(vids),
        "exit_tag": compiled.steering.exit_tag,
        "uses_drop": uses_drop,
        "mpls_in": bool(label_steps),
        "mpls_out": bool(lbls),
        "labels": _args(
            [LB.label_pattern(tag) for tag, _ in label_steps] + ["-"],
            [f"label {tag}: {site_name(inst.name)}" for tag, inst in label_steps] + ["not a label of this host"],
            indent="    ",
        ),
        "nlabels": len(label_steps),
        "lbls": [{"tag": t, "entry": Raw(LB.label_entry(t))} for t in sorted(lbls)],
        "ttl": LB.TTL,
    }
    text = _render("host.click.j2", ctx)
    # blanks before a line end go (a split, not the regex `[ \t]+\n`: that retries every run of blanks
    # inside a line, half a second over the hosts of a 10,000-chain site); the last line keeps its own
    lines = text.split("\n")
    text = "\n".join([line.rstrip(" \t") for line in lines[:-1]] + lines[-1:])
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.rstrip("\n") + "\n"


def render_click(compiled: Any) -> dict[str, str]:
    """``click/HOST.click`` for every host with a placed instance."""
    if not getattr(compiled, "hosts", None):
        return {}
    taps = tap_names(compiled.site)
    files = {}
    for name in sorted(compiled.hosts):
        text = render_host(compiled, compiled.hosts[name], taps)
        if text is not None:
            files[f"click/{name}.click"] = text
    return files


def click_limitations(site: ir.Site) -> list[str]:
    """Everything in ``site`` that its Click configurations cannot express
    (the configurations pass such packets on unchanged and say so in a
    comment); meant for warnings."""
    return [s for m in site.modules for s in limitations(m)]
