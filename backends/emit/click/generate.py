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
only get data already marked as Click text (``Raw``); ``render_template`` refuses
anything else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from backends.emit.click import labels as LB
from backends.emit.click.elementclass import (
    QUEUE,
    Instance,
    class_text,
    is_external,
    judged_directions,
    limitations,
    step_text,
)
from backends.emit.click.text import ClickUnsupported, Raw, click_word, config_args, quote, render_template, site_name
from backends.emit.vm.generate import tap_name
from compiler import ir
from compiler.lowering import tables as T
from compiler.steering.hostplan import HostPlan, Next, Step

IFACE = "eth0"  # the host's first switch port
MAX_PAINT = 255  # steps one Paint tells apart: colours 0..254 (255 means "every output" to PaintSwitch)
GROUP_ANNO = 18  # a second paint byte for instances of more than MAX_PAINT steps (else only label moves use it)


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


def _key(s: Step) -> tuple[bool, int]:
    """A step's identity on the host: VLAN ids and MPLS labels are separate spaces."""
    return (s.label, s.tag)


def _entry(label: bool, tag: int) -> str:
    """The step entry element: ``t4`` for VLAN id 4, ``m4`` for MPLS label 4."""
    return f"m{tag}" if label else f"t{tag}"


def _input_port(inst: Instance, step: Step, judges: list[bool] | None = None) -> int:
    """``judges``: :func:`judged_directions` of ``inst`` when the caller has it (a
    scan of every step of the instance, per step would be quadratic)."""
    m = inst.module
    if inst.external:
        return 0
    if m.type in ("firewall", "classify", "nat", "loadbalance"):
        return (judges if judges is not None else judged_directions(inst)).index(step.reverse)
    return 0


# ---------------------------------------------------------------- hosts


def _instances(compiled: Any, hp: HostPlan) -> list[Instance]:
    site = compiled.site
    host_of = compiled.host_of()
    placed = sorted(i for i, h in host_of.items() if h == hp.host)
    modules = {i: m for m in site.modules for i in m.instance_names()}
    cnames = _unique(placed, lambda i: "i_" + click_word(i))
    out = {}
    for i in placed:
        m = modules[i]
        out[i] = Instance(i, m, cnames[i], "I" + cnames[i][1:], external=is_external(m))
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
            parts.append(f"{label} -> {step_text(n)} here")
        elif n.kind == "switch":
            parts.append(
                f"{label} -> switch, {step_text(n)}"
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
            raise ClickUnsupported(f"host {hp.host}: local {step_text(n)} has no step")
        return Raw(_entry(n.label, n.tag))

    inst_decls = []
    for inst in insts:
        if not inst.steps:
            inst_decls.append({"decl": None, "note": site_name(inst.name)})
            continue
        m = inst.module
        n = len(inst.steps)
        painted, grouped = _painted(inst), _grouped(inst)
        inst_decls.append({"decl": Raw(f"{inst.cname} :: {inst.cls};"), "note": site_name(inst.name)})
        if painted:
            for j, label in enumerate(m.outputs):
                if grouped:
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
                if grouped:
                    decls.append(Raw(f"{entry}_g :: Paint({k // MAX_PAINT}, ANNO {GROUP_ANNO});"))
            else:
                decls.append(Raw(f"{entry} :: Null;"))
    steer_off = len(LB.STEER) if label_steps else 0
    step_blocks: list[str] = []
    first_at: dict[tuple[int, tuple[bool, int]], int] = {}  # (instance, step key) -> index of its first step
    judges: dict[int, list[bool]] = {}  # instance -> its judged directions
    shapes = {id(inst): (_painted(inst), _grouped(inst)) for inst in insts}  # asked once per step below
    for inst in insts:
        for k, s in enumerate(inst.steps):
            first_at.setdefault((id(inst), _key(s)), k)
        judges[id(inst)] = judged_directions(inst)
    for (label, tag), inst in steps:
        m = inst.module
        k = first_at[(id(inst), (label, tag))]
        s = inst.steps[k]
        entry = _entry(label, tag)
        painted, grouped = shapes[id(inst)]
        via = f" -> {entry}_g" if grouped else ""
        lines = [f"{entry}{via} -> [{_input_port(inst, s, judges.get(id(inst)))}] {inst.cname};"]
        nxt = dict(s.next)
        for j, out in enumerate(m.outputs):
            if inst.external:
                src = f"{inst.cname} [{k * len(m.outputs) + j}]"
            elif painted and grouped:
                src = f"{_switch(inst, j)}_g{k // MAX_PAINT} [{k % MAX_PAINT}]"
            elif painted:
                src = f"{_switch(inst, j)} [{k}]"
            else:
                src = f"{inst.cname} [{j}]"
            lines.append(f"{src} -> {target(nxt.get(out))};  // {site_name(out)}")
        if label:
            enter = f"labels [{len(step_blocks) - len(vlan_steps)}] -> Strip(4) -> {entry};"
        else:
            enter = f"steer [{steer_off + len(step_blocks)}] -> VLANDecap -> {entry};"
        # each step's block as text (a blank line, the step and its note, the lines), not a template loop:
        # a host of a 10,000-chain site has thousands of steps
        note = f"{site_name(inst.name)}{' (reverse)' if s.reverse else ''}: {_step_note(s)}"
        step_blocks.append(f"\n// {step_text(s)}: {note}\n{enter}\n" + "".join([line + "\n" for line in lines]))
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
        "classes": [Raw(class_text(i, taps).rstrip("\n")) for i in insts if i.steps],
        "instances": inst_decls,
        "steer": config_args(steer, notes, indent="    "),
        "nsteps": len(steer) - 1,
        "steps": Raw("".join(step_blocks)),
        "decls": decls,
        "paint_conns": paint_conns,
        "vids": sorted(vids),
        "exit_tag": compiled.steering.exit_tag,
        "uses_drop": uses_drop,
        "mpls_in": bool(label_steps),
        "mpls_out": bool(lbls),
        "labels": config_args(
            [LB.label_pattern(tag) for tag, _ in label_steps] + ["-"],
            [f"label {tag}: {site_name(inst.name)}" for tag, inst in label_steps] + ["not a label of this host"],
            indent="    ",
        ),
        "nlabels": len(label_steps),
        "lbls": [{"tag": t, "entry": Raw(LB.label_entry(t))} for t in sorted(lbls)],
        "ttl": LB.TTL,
    }
    text = render_template("host.click.j2", ctx)
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
