"""The OpenFlow table layout, declared as data.

Each switch runs the same pipeline; lowering fills it.  Metadata carries the
classification entry (bits 32..47) and the flow-hash bucket (bits 0..7)
between tables of one switch.
"""

from __future__ import annotations

from compiler.steering import flowhash
from compiler.steering.tags import (  # noqa: F401 (the tag space, re-exported with the layout)
    EXIT_TAG,
    FIRST_TAG,
    FLOOD_TAG,
    GENERATION_TAG_BIT,
    MAX_TAG,
    generation_tag,
)

CLASSIFY = 0  # by port: edge ports -> POLICY (IP, ARP) or NONIP; tagged -> STEER; box returns -> entry
POLICY = 1  # IP and ARP from edges: first-match policy -> entry (or drop / forward)
NONIP = 2  # other ethertypes from edges: policy -> drop or flood (no FSL primitive tells them apart)
HASH_FIRST = 3  # 2 tables per hash bit: IP-address XOR, then L4-port XOR
HASH_LAST = HASH_FIRST + 2 * flowhash.HASH_BITS - 1
SELECT = HASH_LAST + 1  # entry + bucket + headers -> first tag
STEER = SELECT + 1  # tag -> instance port, box, link, fork or exit
EXIT = STEER + 1  # destination -> edge port (tag popped)

TABLES = {
    CLASSIFY: "classify",
    POLICY: "policy",
    NONIP: "nonip",
    SELECT: "select",
    STEER: "steer",
    EXIT: "exit",
    **{HASH_FIRST + i: f"hash{i // 2}{'ip' if i % 2 == 0 else 'l4'}" for i in range(2 * flowhash.HASH_BITS)},
}

ENTRY_SHIFT = 32
ENTRY_MASK = 0xFFFF << ENTRY_SHIFT
BUCKET_MASK = flowhash.MASK

GENERATION_ENTRY_BIT = 15  # top bit of the metadata entry field (metadata bit 47)
GENERATION_COOKIE_BIT = 63
INGRESS_TABLES = (0, 1, 2)  # tables whose rules pick a packet's generation; flipped in one bundle

POLICY_COOKIE_MASK = 0xFFFF << 16  # the cookie bits that name the policy (plan.json gives VALUE/MASK)


def policy_cookie(policy_index: int, hop: int) -> int:
    """A rule's cookie names its policy (bits 16..31: index + 1) and hop (bits 0..15),
    so counters can be read per policy and hop."""
    return ((policy_index + 1) & 0xFFFF) << 16 | (hop & 0xFFFF)


PRIO_POLICY_TOP = 60000  # first policy; each later entry 10 lower
PRIO_TAGGED = 65000
PRIO_SELECT_TOP = 30000  # first combo of an entry; each later one 1 lower
PRIO_DEFAULT = 1
