"""The steering tag space: logical tags, the update generation folded into
them, and how a tag travels on the wire.

Steering owns its tags (which dispatch each one names).  A tag travels as an
outer VLAN id while the site needs at most :data:`MAX_VLAN_TAG` of them per
generation.  Beyond that most dispatch tags become MPLS labels (20 bits, the
top one the generation: half a million per generation); a label is never
taken off by a switch, only by the host it leads to, since a switch cannot
see under a label to learn the ethertype a pop must restore (and Open
vSwitch recirculates the packet to parse it).  So what a switch must untag
-- a box visit, a copy whose original then leaves by the exit table, and
every dispatch set in the same actions as those -- stays a VLAN id, as do
the exit and flood tags.
"""

from __future__ import annotations

from enum import Enum

GENERATION_TAG_BIT = 11  # VLAN id bit that says which generation a tag belongs to (docs/platform.md)
EXIT_TAG = 1  # tagged, heading for the exit table
FLOOD_TAG = 2  # non-IP broadcast crossing a link
FIRST_TAG = 3
MAX_TAG = (1 << GENERATION_TAG_BIT) - 2  # per generation (bit 11 is the generation; 0xfff is reserved)
MAX_VLAN_TAG = MAX_TAG
MPLS_GENERATION_BIT = 19  # of an MPLS label
MAX_MPLS_TAG = (1 << MPLS_GENERATION_BIT) - 1


class Encoding(str, Enum):
    VLAN = "vlan"
    MPLS = "mpls"


def generation_tag(tag: int, generation: int, encoding: Encoding = Encoding.VLAN) -> int:
    """The tag value of logical ``tag`` in ``generation``."""
    bit = GENERATION_TAG_BIT if encoding is Encoding.VLAN else MPLS_GENERATION_BIT
    return tag | generation << bit
