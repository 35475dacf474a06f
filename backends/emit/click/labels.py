"""Steering tags that travel as MPLS labels, on a module host (Click text).

Beyond the VLAN space a dispatch's tag is an MPLS label
(``compiler.steering.tags``): one label stack entry with ethertype 0x8847,
right after the MAC addresses or after a customer's VLAN tag, the label the
top 20 bits of the entry.  The switch never takes a label off; the host it
leads to does, so that every module sees the frame exactly as it entered
the platform, and the host pushes the label of the next hop when the packet
goes back.  Click has no MPLS elements; the host configuration moves bytes
with standard ones (``host.click.j2``, ``_mpls.click.j2``):

* in: ``steer`` tells a labelled frame by its ethertype (at offset 12, or 16
  under a customer tag), the bottom-of-stack bit and the IP version of the
  packet under the label (0x0800 or 0x86DD is what the frame gets back); the
  label then moves in front of the frame (``GetEtherAddress`` /
  ``StoreEtherAddress`` through annotation bytes 4..27), ``labels`` (a
  ``Classifier`` on the first 4 bytes) picks the step and ``Strip(4)``
  takes the label off;
* out: ``Unstrip(6)`` + ``StoreData`` put the ethertype and the label entry
  (bottom of stack, TTL :data:`TTL`, traffic class 0) in front of the frame,
  then the MAC addresses (and the customer tag) move in front of it.

Modules reached over a tap (``vm``, ``process``, ``ids``, ``dpi``) keep the
802.1Q tap convention: a labelled step gets a VLAN id of its own on the tap
(:func:`step_tap_vids`).
"""

from __future__ import annotations

from collections.abc import Sequence

from compiler.steering.hostplan import Step
from compiler.steering.tags import FIRST_TAG, MAX_TAG, generation_tag

ETH_MPLS = 0x8847
TTL = 64  # of a label the host pushes (no switch reads or decrements it)

# The patterns ``steer`` starts with on a host that has labelled steps (in
# this order: the connections in _mpls.click.j2 follow it).  Labelled frames
# come first so that no VLAN step's pattern takes a customer tag with a label
# under it.
STEER = (
    ("12/8847 16/01%01 18/40%f0", "an MPLS label, IPv4 under it"),
    ("12/8847 16/01%01 18/60%f0", "an MPLS label, IPv6 under it"),
    ("12/8100 16/8847 20/01%01 22/40%f0", "a customer VLAN tag, then an MPLS label, IPv4 under it"),
    ("12/8100 16/8847 20/01%01 22/60%f0", "a customer VLAN tag, then an MPLS label, IPv6 under it"),
    ("12/8100 16/8847", "any other label under a customer VLAN tag"),
)


def label_pattern(tag: int) -> str:
    """``labels`` pattern of a step: the label in front of the frame."""
    return f"0/{tag << 12:08x}%fffff000"


def label_entry(tag: int) -> str:
    """Ethertype and label stack entry a host pushes (hex, 6 bytes)."""
    return f"{ETH_MPLS:04x}{tag << 12 | 1 << 8 | TTL:08x}"


class TapFull(ValueError):
    """More steps on one tap than VLAN ids of a generation."""


def step_tap_vids(steps: Sequence[Step], generation: int) -> list[int]:
    """The VLAN id each step of a tap-attached instance carries on its tap.

    A step whose tag is a VLAN id uses it; a step whose tag is an MPLS label
    gets a VLAN id of the same update generation that no other step of the
    instance uses (the lowest free ones, in label order), so the two
    generations' configurations that may run at once during an update never
    take each other's returns."""
    used = {s.tag for s in steps if not s.label}
    free = (v for k in range(FIRST_TAG, MAX_TAG + 1) for v in [generation_tag(k, generation)] if v not in used)
    by_label: dict[int, int] = {}
    for s in sorted((s for s in steps if s.label), key=lambda s: s.tag):
        vid = next(free, None)
        if vid is None:
            raise TapFull(
                f"instance {s.instance} has {len(steps)} steps; its tap tells at most {MAX_TAG - FIRST_TAG + 1} apart"
            )
        by_label[s.tag] = vid
    return [by_label[s.tag] if s.label else s.tag for s in steps]
