"""Emit a compiled site as the `fsc compile` output directory.

Rendering is pure (``render`` returns path -> text); writing the files is
:mod:`backends.emit.write`'s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from backends.emit.click.generate import render_click
from backends.emit.documents import (
    CONNTRACK_NOTE,
    MASKED_PORTS_NOTE,
    GenerationBits,
    PlanDocument,
    PolicyInfo,
    ReplicaInfo,
    SteeringInfo,
    SwitchInfo,
    UpdateInfo,
)
from backends.emit.openflow import render_switch
from backends.emit.process import render_process
from backends.emit.vm.generate import render_vm
from compiler.flowir import Ct, FlowEntry, SwitchTables
from compiler.lowering import tables as T
from compiler.lowering.profiles import L4_PORTS, profile_of
from compiler.pipeline import Compiled
from compiler.steering import flowhash
from compiler.steering.steer import BoxVisit, Fork, Visit


def render(c: Compiled) -> dict[str, str]:
    files: dict[str, str] = {}
    site = c.site
    for sw in site.switches:
        ofctl, groups, json = render_switch(c.tables[sw.name], sw.dpid)
        files[f"openflow/{sw.name}.ofctl"] = ofctl
        if groups:
            files[f"openflow/{sw.name}.groups"] = groups
        files[f"openflow/{sw.name}.json"] = json
    assert c.placement is not None
    files["placement.json"] = c.placement.to_json()
    files.update(render_process(c))
    files.update(render_click(c))
    files.update(render_vm(c))
    files["plan.json"] = _plan(c, files)
    return dict(sorted(files.items()))


def _describe(d: object) -> str:
    if isinstance(d, Visit):
        return f"{d.instance}{' (reply)' if d.reverse else ''}"
    if isinstance(d, BoxVisit):
        return f"box {d.box}"
    if isinstance(d, Fork):
        return "copy and continue"
    return type(d).__name__.lower()


_MASKED_PORTS = MASKED_PORTS_NOTE
_CONNTRACK = CONNTRACK_NOTE


def json_cannot_carry(tables: SwitchTables) -> list[str]:
    """The Open vSwitch extensions a switch's rules use that the JSON form
    cannot take to a standard ofctl_rest parser (load the .ofctl instead),
    the one met first (in the entries' order) first."""
    entries = tables.entries
    masked = next(
        (i for i, e in enumerate(entries) for f in e.match.fields if f[2] is not None and f[0] in L4_PORTS), -1
    )
    # conntrack comes first only if met before that entry; else all that matters is whether it is met at all,
    # looked for from the end (the CT table is the last: a scan from the start read every entry before it)
    if masked >= 0 and _has_ct(entries[:masked]):
        return [_CONNTRACK, _MASKED_PORTS]
    notes = [_MASKED_PORTS] if masked >= 0 else []
    return notes + [_CONNTRACK] if _has_ct(reversed(entries)) else notes


def _has_ct(entries: Iterable[FlowEntry]) -> bool:
    return any(type(a) is Ct for e in entries for a in e.actions)


HASH_CHUNK = 1 << 20  # characters encoded and hashed at a time


def sha256_text(text: str) -> str:
    """The sha256 of ``text`` in UTF-8, a chunk at a time: encoding a file
    of tens of megabytes whole makes a copy the system must map page by page
    (the same digest: UTF-8 spells each character on its own)."""
    h = hashlib.sha256()
    for at in range(0, len(text), HASH_CHUNK):
        h.update(text[at : at + HASH_CHUNK].encode())
    return h.hexdigest()


def _replicas(c: Compiled) -> dict[str, ReplicaInfo]:
    """plan.json's ``replicas``: weights, shares of new flows and ranges."""
    weights = c.weights()
    out = {}
    for m in c.site.modules:
        names = m.instance_names()
        if len(names) < 2 and not m.max_replicas:
            continue
        w = [weights.get(n, 1) for n in names]
        shares = [len(s) / flowhash.BUCKETS for s in flowhash.bucket_sets(w)]
        out[m.name] = ReplicaInfo(
            weights=dict(zip(names, w)),
            shares={n: round(s, 6) for n, s in zip(names, shares)},
            range=[m.min_replicas or m.replicas, m.max_replicas] if m.max_replicas else None,
        )
    return out


def _plan(c: Compiled, files: dict[str, str]) -> str:
    """plan.json (:class:`backends.emit.documents.PlanDocument`) of the other files."""
    assert c.steering is not None
    steering = c.steering
    tags = {str(steering.exit_tag): "exit", str(steering.flood_tag): "flood"}
    ordered = sorted(steering.tags.items(), key=lambda kv: kv[1])
    tags.update({str(t): _describe(d) for d, t in ordered if not steering.is_label(d)})
    labels = {str(t): _describe(d) for d, t in ordered if steering.is_label(d)}
    doc = PlanDocument(
        site=c.site.name,
        files={p: sha256_text(t) for p, t in sorted(files.items())},
        tables={str(k): v for k, v in sorted(T.TABLES.items())},
        generation=c.steering.generation,
        update=UpdateInfo(
            ingress_tables=list(T.INGRESS_TABLES),
            generation_bits=GenerationBits(
                vlan_vid=1 << T.GENERATION_TAG_BIT,
                metadata=1 << (T.GENERATION_ENTRY_BIT + T.ENTRY_SHIFT),
                cookie=1 << T.GENERATION_COOKIE_BIT,
            ),
        ),
        steering=SteeringInfo(
            tag="outer VLAN (802.1Q) id" + ("; MPLS label (0x8847) where labels are listed" if labels else ""),
            tags=tags,
            labels=labels,
        ),
        switches={
            sw.name: SwitchInfo(
                dpid=sw.dpid,
                rules=len(c.tables[sw.name].entries),
                tcam=sw.tcam,
                profile=profile_of(sw).name,
                json_cannot_carry=json_cannot_carry(c.tables[sw.name]),
            )
            for sw in c.site.switches
        },
        replicas=_replicas(c),
        policies=[
            PolicyInfo(
                name=p.name,
                cookie=f"{T.policy_cookie(p.index, 0):#x}/{T.POLICY_COOKIE_MASK:#x}",
                symmetric=p.symmetric,
            )
            for p in c.site.policies
        ],
    )
    return doc.to_text()
