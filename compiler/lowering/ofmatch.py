"""Header spaces -> OpenFlow matches with their prerequisites.

A header-space point has every field; a real packet lacks fields its protocol
does not carry, and OpenFlow refuses a match on such a field unless the match
also pins the protocol (``ipv4_src`` needs ``eth_type=0x0800``, ``tcp_dst``
needs ``ip_proto=6`` ...).  We split a space by protocol first (IPv4 / IPv6 /
other; TCP / UDP / other) so every cube pins what its fields need; a field the
packet lacks reads as 0 in the header-space model, so a cube keeps such a
packet exactly when its pattern admits 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from compiler.flowir import ETH_TYPE_IPV4, ETH_TYPE_IPV6, OFPVID_PRESENT, FieldMatch
from compiler.headerspace.space import DEFAULT_LAYOUT, Cube, HeaderSpace
from compiler.lowering.profiles import OVS, Profile
from compiler.oxm_fields import FIELDS

IP_FIELDS = ("ip_dscp", "ip_proto", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "tp_src", "tp_dst")
V4_FIELDS = ("ipv4_src", "ipv4_dst")
V6_FIELDS = ("ipv6_src", "ipv6_dst")
L4_FIELDS = ("tp_src", "tp_dst")
PLAIN = {
    "eth_src": "eth_src",
    "eth_dst": "eth_dst",
    "vlan_vid": "vlan_vid",
    "eth_type": "eth_type",
    "ip_dscp": "ip_dscp",
    "ip_proto": "ip_proto",
    "ipv4_src": "ipv4_src",
    "ipv4_dst": "ipv4_dst",
    "ipv6_src": "ipv6_src",
    "ipv6_dst": "ipv6_dst",
}
L4_NAMES = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst")}


def field_mask(name: str) -> int:
    """The bits of ``name`` in the packed header-space layout."""
    return _FIELD_MASKS[name]


_FIELD_MASKS = {f.name: ((1 << f.width) - 1) << DEFAULT_LAYOUT.offset(f.name) for f in DEFAULT_LAYOUT.fields}
_OFFSETS = {f.name: DEFAULT_LAYOUT.offset(f.name) for f in DEFAULT_LAYOUT.fields}


def _eq(name: str, value: int) -> HeaderSpace:
    return HeaderSpace.field_eq(name, value)


def _clear_or_drop(cube: Cube, fields: Iterable[str]) -> Cube | None:
    """Remove constraints on absent ``fields``: keep the cube if each admits 0."""
    value, mask = cube.value, cube.mask
    for name in fields:
        fmask = _FIELD_MASKS[name]
        if value & fmask:
            return None  # the pattern needs a 1 bit where an absent field reads 0
        mask &= ~fmask
    return Cube(value & mask, mask)


_IP_MASK = sum(_FIELD_MASKS[f] for f in IP_FIELDS)
_L4_MASK = sum(_FIELD_MASKS[f] for f in L4_FIELDS)


def _with(cube: Cube, name: str, value: int) -> Cube | None:
    """``cube`` and ``name == value`` (one cube or nothing): a header-space
    intersection with one point of one field, done on the bits."""
    fm, off = _FIELD_MASKS[name], _OFFSETS[name]
    bits = value << off
    if (cube.value ^ bits) & cube.mask & fm:
        return None
    return Cube(cube.value | bits, cube.mask | fm)


def _without(cube: Cube, name: str, values: tuple[int, ...], whole: HeaderSpace) -> tuple[Cube, ...]:
    """``cube`` minus ``name`` in ``values``; cheap when the cube fixes the
    field (the usual case), else exact header-space subtraction."""
    fm, off = _FIELD_MASKS[name], _OFFSETS[name]
    if cube.mask & fm == fm:
        return () if (cube.value & fm) >> off in values else (cube,)
    one = HeaderSpace._of(DEFAULT_LAYOUT, [(cube.value, cube.mask)])
    return (one - whole).cubes


_IP = _eq("eth_type", ETH_TYPE_IPV4) | _eq("eth_type", ETH_TYPE_IPV6)
_L4 = _eq("ip_proto", 6) | _eq("ip_proto", 17)


def _split(space: HeaderSpace) -> list[tuple[int | None, int | None, Cube]]:
    """(eth class, proto class, cube) with absent fields cleared.  Cubes are
    only split where their fields need a prerequisite, to keep rules few."""
    out: list[tuple[int | None, int | None, Cube]] = []
    for whole in space.cubes:
        if not whole.mask & _IP_MASK:
            out.append((None, None, whole))
            continue
        for cube in _without(whole, "eth_type", (ETH_TYPE_IPV4, ETH_TYPE_IPV6), _IP):
            c = _clear_or_drop(cube, IP_FIELDS)
            if c is not None:
                out.append((None, None, c))
        for eth, absent in ((ETH_TYPE_IPV4, V6_FIELDS), (ETH_TYPE_IPV6, V4_FIELDS)):
            only = _with(whole, "eth_type", eth)
            if only is None:
                continue
            if not only.mask & _L4_MASK:
                c = _clear_or_drop(only, absent)
                if c is not None:
                    out.append((eth, None, c))
                continue
            for rest in _without(only, "ip_proto", (6, 17), _L4):
                c = _clear_or_drop(rest, absent + L4_FIELDS)
                if c is not None:
                    out.append((eth, None, c))
            for proto in (6, 17):
                pc = _with(only, "ip_proto", proto)
                if pc is not None:
                    c = _clear_or_drop(pc, absent)
                    if c is not None:
                        out.append((eth, proto, c))
    return out


Matches = list[tuple[tuple[int, int] | None, tuple[FieldMatch, ...]]]


def space_to_matches(space: HeaderSpace, profile: Profile = OVS) -> Matches:
    """Each cube of ``space`` as (in_edge pattern or None, OpenFlow field matches).

    The ``in_edge`` pattern is returned apart: the caller turns it into a
    metadata match.  Fields the profile cannot mask are spelt exactly (a
    masked port on a standard switch becomes one entry per port).  Lowering
    asks for the same spaces on every switch, so results are memoised by cover."""
    return list(_matches(space._pairs(), profile))


def cube_matches(cube: tuple[int, int], profile: Profile = OVS) -> Matches:
    """:func:`space_to_matches` of the space of one (value, mask) cube."""
    return list(_matches((cube,), profile))


_VID = _FIELD_MASKS["vlan_vid"]
_PRESENT = OFPVID_PRESENT << _OFFSETS["vlan_vid"]


def _any_vlan(cubes: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """The cubes as real packets see vlan_vid: 0 when untagged, the present
    bit and the id when tagged.  A cube that needs the present bit clear and
    an id bit set matches no packet and is dropped; one that needs it clear
    otherwise means "untagged" (vlan_vid exactly 0); and a pair that differs
    only in "untagged" versus "tagged, any id" becomes one cube with vlan_vid
    free (the site universe splits every policy this way, which would double
    its rules).  Complements leave such impossible pieces behind."""
    have: dict[tuple[int, int], None] = {}
    for v, m in cubes:
        if m & _PRESENT and not v & _PRESENT:
            if v & _VID:
                continue  # an id without a tag: no such packet
            m |= _VID
        have.setdefault((v, m), None)
    out: list[tuple[int, int]] = []
    skip: set[tuple[int, int]] = set()
    for v, m in have:
        if (v, m) in skip:
            continue
        if m & _VID == _VID and not v & _VID:
            partner = (v | _PRESENT, (m & ~_VID) | _PRESENT)
        elif m & _VID == _PRESENT and v & _VID == _PRESENT:
            partner = (v & ~_VID, m | _VID)
        else:
            partner = None
        if partner is not None and partner in have and partner not in skip:
            skip.add(partner)
            out.append((v & ~_VID, m & ~_VID))
        else:
            out.append((v, m))
    return out


_ETH_FULL = _FIELD_MASKS["eth_type"]
_ETH_V4, _ETH_V6 = ETH_TYPE_IPV4 << _OFFSETS["eth_type"], ETH_TYPE_IPV6 << _OFFSETS["eth_type"]
_PROTO_FULL = _FIELD_MASKS["ip_proto"]
_PROTO_L4 = (6 << _OFFSETS["ip_proto"], 17 << _OFFSETS["ip_proto"])
_V4_CLEAR = sum(_FIELD_MASKS[f] for f in V6_FIELDS)  # what an IPv4 cube clears (absent IPv6 fields)
_V6_CLEAR = sum(_FIELD_MASKS[f] for f in V4_FIELDS)


def _split_fixed(pairs: list[tuple[int, int]]) -> list[tuple[int | None, int, int]] | None:
    """:func:`_split` of cubes that each fix the ethertype to IPv4 or IPv6 and,
    when they test a transport port, the protocol (lowering's terms nearly
    always do): (proto class, value, mask) on the bits, no header-space
    algebra and no Cube objects; None for any other cube (then ``_split``)."""
    out: list[tuple[int | None, int, int]] = []
    for v, m in pairs:
        if not m & _IP_MASK:
            out.append((None, v, m))
            continue
        if m & _ETH_FULL != _ETH_FULL:
            return None
        eth = v & _ETH_FULL
        clear = _V4_CLEAR if eth == _ETH_V4 else _V6_CLEAR if eth == _ETH_V6 else None
        if clear is None:
            return None
        proto: int | None = None
        if m & _L4_MASK:
            if m & _PROTO_FULL != _PROTO_FULL:
                return None
            bits = v & _PROTO_FULL
            if bits in _PROTO_L4:
                proto = 6 if bits == _PROTO_L4[0] else 17
            else:
                clear |= _L4_MASK  # a protocol without ports: the ports are absent
        if v & clear:
            continue  # the pattern needs a 1 bit where an absent field reads 0
        out.append((proto, v, m & ~clear))
    return out


@lru_cache(maxsize=1 << 16)
def _matches(
    cubes: tuple[tuple[int, int], ...], profile: Profile
) -> tuple[tuple[tuple[int, int] | None, tuple[FieldMatch, ...]], ...]:
    result = []
    pairs = _any_vlan(cubes)
    split = _split_fixed(pairs)
    if split is None:
        split = [(proto, c.value, c.mask) for _, proto, c in _split(HeaderSpace._raw(DEFAULT_LAYOUT, pairs))]
    for proto, value, mask in split:
        fields: list[FieldMatch] = []
        edge: tuple[int, int] | None = None
        layout, masked = _cared(mask)
        for name, off, full, oxm, m, fmask in layout:
            v = (value >> off) & full
            if oxm is None:  # in_edge: the caller's business
                edge = (v, m)
                continue
            if oxm == "":  # a transport port: its name depends on the protocol
                oxm = L4_NAMES[proto][0 if name == "tp_src" else 1]  # type: ignore[index]
            fields.append(FieldMatch(oxm, v, fmask))
        spelt = _exact(fields, profile) if masked else [fields]
        for row in spelt:
            for r in ipv6_loadable(row) if masked and _has_v6_mask(row) else (row,):
                result.append((edge, tuple(sorted(r))))
    return tuple(result)


@lru_cache(maxsize=4096)
def _cared(mask: int) -> tuple[tuple[tuple[str, int, int, str | None, int, int | None], ...], bool]:
    """The fields a cube's ``mask`` cares about, each with its (field) mask
    and its OpenFlow mask (None: exact), and whether an OpenFlow field is
    masked: a site's terms come in a few shapes of mask."""
    out = []
    for name, off, full, oxm in _FIELD_INFO:
        m = (mask >> off) & full
        if m:
            out.append((name, off, full, oxm, m, None if m == full else m))
    return tuple(out), any(f[5] is not None for f in out if f[3] is not None)


# (layout field, offset, all-ones of its width, OXM name: None for in_edge, "" for tp_*), in layout order
_FIELD_INFO = tuple(
    (
        f.name,
        DEFAULT_LAYOUT.offset(f.name),
        (1 << f.width) - 1,
        None if f.name == "in_edge" else "" if f.name in L4_FIELDS else PLAIN[f.name],
    )
    for f in DEFAULT_LAYOUT.fields
)


def _has_v6_mask(fields: list[FieldMatch]) -> bool:
    return any(f.mask is not None and f.field in ("ipv6_src", "ipv6_dst") for f in fields)


def ipv6_loadable(fields: list[FieldMatch]) -> list[list[FieldMatch]]:
    """Split IPv6 matches whose mask ovs-ofctl cannot read (:func:`ipv6_mask_ok`)."""
    out = [fields]
    for fm in fields:
        if fm.field in ("ipv6_src", "ipv6_dst") and fm.mask is not None and not ipv6_mask_ok(fm.mask):
            parts = split_ipv6_mask(fm)
            out = [[f for f in row if f is not fm] + [p] for row in out for p in parts]
    return out


IPV6_FULL = (1 << 128) - 1


def ipv6_mask_ok(mask: int) -> bool:
    """ovs-ofctl reads an IPv6 mask written with a decimal digit first as a
    prefix length (``::/8000::80`` is refused), so a mask that is not a
    prefix must start, in its shortest spelling, with ':' or a hex letter."""
    inverted = ~mask & IPV6_FULL
    if inverted & (inverted + 1) == 0:
        return True  # a prefix: written as its length
    top = mask >> 112
    if top == 0:
        return True  # written "::..."
    return (top >> 4 * ((top.bit_length() - 1) // 4)) >= 0xA


def split_ipv6_mask(fm: FieldMatch) -> list[FieldMatch]:
    """The same set as matches with loadable masks: care about a bit or two
    more in the leading hex digit of the first group (it becomes a letter),
    one match per value of the added bits."""
    assert fm.mask is not None
    top = fm.mask >> 112
    shift = 4 * ((top.bit_length() - 1) // 4)
    nibble = top >> shift
    extra = 0b0010 if nibble & 0b1000 else 0b1010 & ~nibble
    bits = [b for b in range(4) if extra >> b & 1]
    out = []
    for k in range(1 << len(bits)):
        v = fm.value
        for i, b in enumerate(bits):
            if k >> i & 1:
                v |= 1 << (112 + shift + b)
        out.append(FieldMatch(fm.field, v, fm.mask | extra << (112 + shift)))
    return out


#: the most flow entries one match may spell into (a masked value of a field
#: the switch cannot mask becomes one entry per value: `tcp and src port
#: 1024..65535 and dst port 1024..65535` on a standard switch would be four
#: billion); past it lowering raises TooManyEntries and check says E0804
MAX_SPELT = 100_000


#: the most flow entries lowering builds for one switch: past it the switch's
#: lowering stops and check says E0804 (an accepted fuzzed site spelt 1.2
#: million POLICY entries, 24-39 s, on a standard switch with no `tcam` that
#: would have said E0801)
MAX_SWITCH_ENTRIES = 1_000_000


class SwitchFull(Exception):
    """A switch's tables passed MAX_SWITCH_ENTRIES while being built."""


class TooManyEntries(Exception):
    """A match, or one decision list, would spell into more than its bound
    of flow entries (``count`` counted so far)."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


def _exact(fields: list[FieldMatch], profile: Profile) -> list[list[FieldMatch]]:
    """Spell masked values of fields the profile cannot mask as exact values."""
    count = 1
    for fm in fields:
        if fm.mask is not None and fm.field not in profile.maskable:
            count <<= FIELDS[fm.field].bits - bin(fm.mask).count("1")
    if count > MAX_SPELT:
        raise TooManyEntries(count)
    out = [fields]
    for fm in [f for f in fields if f.mask is not None and f.field not in profile.maskable]:
        name, width = fm.field, FIELDS[fm.field].bits
        assert fm.mask is not None
        free = [b for b in range(width) if not fm.mask >> b & 1]
        values = [fm.value | sum(((k >> i) & 1) << b for i, b in enumerate(free)) for k in range(1 << len(free))]
        out = [[f for f in row if f.field != name] + [FieldMatch(name, v)] for row in out for v in values]
    return out
