"""The steering tag space: logical tags and the update generation folded into them.

Steering owns its tags (which dispatch each one names); lowering decides how
a tag travels on the wire.
"""

from __future__ import annotations

GENERATION_TAG_BIT = 11  # VLAN id bit that says which generation a tag belongs to (docs/platform.md)
EXIT_TAG = 1  # tagged, heading for the exit table
FLOOD_TAG = 2  # non-IP broadcast crossing a link
FIRST_TAG = 3
MAX_TAG = (1 << GENERATION_TAG_BIT) - 2  # per generation (bit 11 is the generation; 0xfff is reserved)


def generation_tag(tag: int, generation: int) -> int:
    """The VLAN id of logical ``tag`` in ``generation``."""
    return tag | generation << GENERATION_TAG_BIT
