"""One ``elementclass`` per placed module instance: the context each module
type gives its template, the tap plumbing of external (``vm``/``process``)
instances, and what Click cannot do as the model says (``limitations``)."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backends.emit.click.decision import Decision, Rule, build_decision
from backends.emit.click.match import cube_fields, swap_fields
from backends.emit.click.text import Raw, config_args, hex_string, quote, render_template, site_name
from compiler import ir
from compiler.check.catalogue import CATALOGUE
from compiler.headerspace.space import HeaderSpace
from compiler.steering.hostplan import Next, Step

QUEUE = 1000  # packets per output queue (Click's default capacity)


EXTERNAL_KINDS = ("vm", "process")
EXTERNAL_TYPES = ("ids", "dpi", "process")  # no Click implementation: always reached over a tap
MAX_EXTERNAL_OUTPUTS = 8  # the output index rides in the 3 PCP bits


@dataclass
class Instance:
    name: str  # as in the plan (`ids#2`)
    module: ir.Module
    cname: str  # Click element name
    cls: str  # Click element class name
    steps: list[Step] = field(default_factory=list)
    external: bool = False
    tap_vids: list[int] = field(default_factory=list)  # per step: its VLAN id on the tap (external only)


def step_text(s: Step | Next) -> str:
    return f"label {s.tag}" if s.label else f"tag {s.tag}"


def is_external(m: ir.Module) -> bool:
    return m.kind in EXTERNAL_KINDS or m.type in EXTERNAL_TYPES


def module_param(m: ir.Module, name: str) -> Any:
    return next((v for k, v in m.params if k == name), None)


def judged_directions(inst: Instance) -> list[bool]:
    """Which directions (False: forward, True: reverse) have their own input."""
    dirs = sorted({s.reverse for s in inst.steps})
    return dirs


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
    rate, burst = module_param(m, "rate"), module_param(m, "burst")
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
    for rev in judged_directions(inst):
        port = judged_directions(inst).index(rev)
        name = "rev" if rev else "fwd"
        title = "reverse steps: judged with source and destination swapped" if rev else "forward steps"
        if m.type == "firewall":
            deny, allow = module_param(m, "deny"), module_param(m, "allow")
            rules = []
            if isinstance(deny, HeaderSpace):
                rules += [Rule(f, None) for f in cube_fields(deny)]
            if isinstance(allow, HeaderSpace):
                rules += [Rule(f, 0) for f in cube_fields(allow)]
            default = None if isinstance(allow, HeaderSpace) else 0
            if rev:
                rules = [Rule(swap_fields(r.fields), r.target) for r in rules]
            out.append(build_decision(name, port, title, rules, default, "filter"))
        else:
            labels = tuple(label for label, _ in m.labels)  # output j is label j, then `else`
            rules = []
            for j, (_, space) in enumerate(m.labels):
                rules += [Rule(swap_fields(f) if rev else f, j) for f in cube_fields(space)]
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
    if is_external(m):
        if len(m.outputs) > MAX_EXTERNAL_OUTPUTS:
            out.append(
                f"module `{m.name}`: a {m.kind} module returns its output in 3 PCP bits; "
                f"outputs after the {MAX_EXTERNAL_OUTPUTS}th are never taken"
            )
        return out
    if m.type == "nat" and _ip(module_param(m, "to")) is None:
        out.append(f"module `{m.name}`: Click's IPRewriter is IPv4-only; NAT to an IPv6 address is not done")
    if m.type == "loadbalance" and (
        _ip(module_param(m, "vip")) is None or any(_ip(b) is None for b in module_param(m, "backends"))
    ):
        out.append(f"module `{m.name}`: Click's IPRewriter is IPv4-only; IPv6 load balancing is not done")
    if m.type == "tunnel" and (_ip(module_param(m, "local")) is None or _ip(module_param(m, "remote")) is None):
        out.append(f"module `{m.name}`: Click's IPEncap is IPv4-only; a tunnel between IPv6 end points is not done")
    if m.type == "ratelimit":
        rate = module_param(m, "rate")
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
    ctx: dict[str, Any] = {"inputs": [(p, rev) for p, rev in enumerate(judged_directions(inst))]}
    if m.type == "nat":
        ctx["to"] = _ip(module_param(m, "to"))
    else:
        vip = _ip(module_param(m, "vip"))
        backends = [_ip(b) for b in module_param(m, "backends")]
        ok = vip is not None and all(b is not None for b in backends)
        ctx["vip"] = vip if ok else None
        ctx["backends"] = backends if ok else []
    return ctx


def _crypto_ctx(inst: Instance) -> dict[str, Any]:
    enc, auth = _crypto_keys(module_param(inst.module, "key"))
    return {"spi": int(module_param(inst.module, "spi")), "enc_key": enc, "auth_key": auth}


def _tunnel_ctx(inst: Instance) -> dict[str, Any]:
    local, remote = _ip(module_param(inst.module, "local")), _ip(module_param(inst.module, "remote"))
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


def class_text(inst: Instance, taps: Mapping[str, str]) -> str:
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
            what = step_text(s) + (f" (tap VLAN id {vid})" if s.label else "")
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
            ret_args=config_args(pats + ["-"], notes + ["anything else"]) if rets else None,
            image=quote(m.image) if m.image else None,
            command=quote(module_param(m, "command")) if module_param(m, "command") is not None else None,
            rules=quote(module_param(m, "rules")) if module_param(m, "rules") is not None else None,
            labels=Raw(", ".join(f"{site_name(label)} = {j}" for j, label in enumerate(m.outputs)) or "none"),
        )
        template = CATALOGUE[m.type].template if m.type in EXTERNAL_TYPES else "external.click.j2"
    else:
        template = CATALOGUE[m.type].template
        fill = TYPE_CONTEXT.get(m.type)
        if fill is not None:
            ctx.update(fill(inst))
    text = render_template(template, ctx)
    notes = "".join(f"// NOT DONE: {n}\n" for n in ctx["limits"])
    return notes + text
