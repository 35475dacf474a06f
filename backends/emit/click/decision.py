"""The judging inputs of firewall and classifier instances: rules in cube
order become an IPv4 element plus a frame Classifier for what it cannot read."""

from __future__ import annotations

from dataclasses import dataclass

from backends.emit.click.match import (
    FAM_IP4,
    FAM_IP6,
    FAM_OTHER,
    Fields,
    family_view,
    frame_patterns,
    ipfilter_expr,
)
from backends.emit.click.text import Raw, config_args


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


def build_decision(
    name: str, port: int, title: str, rules: list[Rule], default: int | None, mode: str, labels: tuple[str, ...] = ()
) -> Decision:
    """``mode``: "filter" (firewall: IPFilter, allow = output 0) or "classify"
    (IPClassifier: one pattern per label, then ``-``)."""
    v4_ok = not any("vlan_vid" in r.fields and family_view(r.fields, FAM_IP4) is not None for r in rules)
    v4 = None
    if v4_ok:
        if mode == "filter":
            args, notes = [], []
            for r in rules:
                g = family_view(r.fields, FAM_IP4)
                if g is not None:
                    args.append(f"{'allow' if r.target == 0 else 'drop'} {ipfilter_expr(g)}")
                    notes.append("")
            args.append("allow -" if default == 0 else "drop -")
            notes.append("no rule matched")
            v4 = {"element": Raw("IPFilter"), "args": config_args(args, notes), "targets": [_target(0)]}
        else:
            pats, notes, targets = [], [], []
            for j, label in enumerate(labels):
                exprs = [
                    ipfilter_expr(g)
                    for r in rules
                    if r.target == j
                    for g in [family_view(r.fields, FAM_IP4)]
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
            v4 = {"element": Raw("IPClassifier"), "args": config_args(pats, notes), "targets": targets}
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
        l2_decl = Raw(f"{name}_l2 :: Classifier({config_args(pats, notes)})")
        rest = Raw(f"{name}_l2")
    else:
        rest = _target(default)
    return Decision(Raw(name), port, Raw(title), v4, l2_decl, targets if pats else [], rest)
