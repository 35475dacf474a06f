"""The OpenFlow table layout, declared as data.

Each switch runs the same pipeline; lowering fills it and leaves out the
tables a site does not need (a goto skips them).  Table numbers are fixed,
so two generations of a site always agree on them during an update.

Packets from edges (and back from boxes) pass the *ingress* tables, which
classify them: CLASSIFY writes the ingress edge into metadata, the region
tables the edges the packet's destination and source would leave by, the
flag tables one bit per exclusion set (docs/design.md, "Exclusions"), and
POLICY picks the first policy that matches.  The flow-hash tables, SELECT,
STEER and EXIT then steer it; on `ovs` switches the CT table takes the
packets of replica-choosing entries through connection tracking and back to
SELECT (docs/design.md, "Replicas and connection tracking").  Metadata
carries, between the tables of one switch, the flow-hash bucket (bits 0..7),
the classification entry (bits 32..47, bit 47 the update generation) and the
fields of
:mod:`compiler.lowering.metadata` (the other bits).
"""

from __future__ import annotations

from compiler.steering import flowhash
from compiler.steering.tags import (  # noqa: F401 (the tag space, re-exported with the layout)
    EXIT_TAG,
    FIRST_TAG,
    FLOOD_TAG,
    GENERATION_TAG_BIT,
    MAX_MPLS_TAG,
    MAX_TAG,
    generation_tag,
)

CLASSIFY = 0  # by port: edge ports -> ingress edge, then the region/flag tables; tagged -> STEER
REGION_DST = 1  # destination address -> the edge it leaves by (longest prefix)
REGION_SRC = 2  # source address -> the edge a reply to it leaves by
SRC_HOME = 3  # the source's region is the ingress edge (replies of symmetric policies)
FLAGS_FIRST = 4  # one table per group of disjoint exclusion sets
FLAGS_LAST = 39
POLICY = 40  # IP and ARP: first-match policies -> classification entry (or drop / forward)
NONIP = 41  # other ethertypes from edges: policy -> drop or flood (no FSL primitive tells them apart)
HASH_FIRST = 42  # per hash bit: IP-address XOR, then (Open vSwitch) L4-port XOR
HASH_LAST = HASH_FIRST + 2 * flowhash.HASH_BITS - 1
SELECT = HASH_LAST + 1  # entry + bucket + headers -> first tag
STEER = SELECT + 1  # tag -> instance port, box, link, fork or exit
EXIT = STEER + 1  # destination -> edge port (tag popped)
CT = EXIT + 1  # `ovs`: connection tracking of replica choices (lookup, commit), back to SELECT

TABLES = {
    CLASSIFY: "classify",
    REGION_DST: "region_dst",
    REGION_SRC: "region_src",
    SRC_HOME: "src_home",
    **{t: f"flags{t - FLAGS_FIRST}" for t in range(FLAGS_FIRST, FLAGS_LAST + 1)},
    POLICY: "policy",
    NONIP: "nonip",
    SELECT: "select",
    STEER: "steer",
    EXIT: "exit",
    CT: "conntrack",
    **{HASH_FIRST + i: f"hash{i // 2}{'ip' if i % 2 == 0 else 'l4'}" for i in range(2 * flowhash.HASH_BITS)},
}

ENTRY_SHIFT = 32
ENTRY_MASK = 0xFFFF << ENTRY_SHIFT
MAX_ENTRIES = (1 << 15) - 1  # entry ids 1..32767 (bit 15 of the field is the generation)
BUCKET_MASK = flowhash.MASK

GENERATION_ENTRY_BIT = 15  # top bit of the metadata entry field (metadata bit 47)
GENERATION_COOKIE_BIT = 63
INGRESS_TABLES = tuple(range(CLASSIFY, NONIP + 1))  # pick a packet's generation; flipped in one bundle

PRIO_TAGGED = 65000
PRIO_POLICY_TOP = 65000  # the first policy (direction); each later one 1 lower
PRIO_POLICY_MIN = 100  # below: the defaults of POLICY
PRIO_SELECT_TOP = 30000  # first combo of an entry; each later one 1 lower
#: a list decided by the hash alone: this + its bucket prefix's length (the longest wins); a list's
#: entries all match its classification entry exactly, so two lists' priorities never meet
PRIO_SELECT_HASH = PRIO_SELECT_TOP - flowhash.HASH_BITS
#: a list decided by the flow hash and `by src`/`by dst` (no `case`): this + its prefix lengths,
#: destination first, then source, then flow hash (each 0..HASH_BITS)
PRIO_SELECT_GRID = PRIO_SELECT_TOP - (flowhash.HASH_BITS + 1) ** 3 + 1
PRIO_CT_TRACK = PRIO_SELECT_TOP + 3  # `ovs`: an untracked packet of a tracked entry goes to CT (lookup)
PRIO_CT_CHOSEN = PRIO_SELECT_TOP + 2  # `ovs`: back from CT's commit, the path the hash rules chose (reg0)
PRIO_CT_MARK = PRIO_SELECT_TOP + 1  # `ovs`: a connection's mark names its path (kept across recompiles)
CT_ZONE = 1  # the conntrack zone of replica choices
CT_CHOICE = "reg0"  # the path a hash rule chose, as a connection mark, until CT commits it
PRIO_DEFAULT = 1
#: CLASSIFY: a labelled frame from a host or link goes to STEER before the
#: flood rule (``PRIO_TAGGED + 1``) looks at its VLAN id: the outer VLAN id of a
#: labelled frame is the customer's own, which may equal the flood tag
PRIO_LABELLED = PRIO_TAGGED + 2
#: STEER: a label's entries sit this far above a VLAN id's (100, 101 in_port
#: variants, 102 marked), for the same reason: a customer VLAN id under which a
#: label travels may equal a steering VLAN id or the exit tag
PRIO_LABEL_SHIFT = 10


def policy_cookie(policy_index: int, hop: int) -> int:
    """Cookies name the policy (bits 16..31) and the hop (bits 0..15), so
    counters can be read per hop and a policy's rules found again."""
    return ((policy_index + 1) & 0xFFFF) << 16 | (hop & 0xFFFF)


POLICY_COOKIE_MASK = 0xFFFF0000
SELECT_COOKIE_POLICY = 0xFFFD  # SELECT rules are shared by policies: their cookie names the entry (bits 0..15)
