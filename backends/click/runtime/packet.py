"""Packets of the runtime: a byte buffer with headroom, Click's header
annotations and its 48-byte annotation area.

Like a Click ``Packet``, the data is a window ``buf[s:]`` into a larger
buffer, so ``pull`` (Strip) and ``push`` (Unstrip, encapsulation) move the
window and an ``Unstrip`` brings back the bytes a ``Strip`` removed.  The MAC,
network and transport header annotations are absolute indices into ``buf``
(-1 when unset).

The annotation area follows Click's ``include/click/packet_anno.hh`` (64-bit
build) so elements that share bytes behave as they do in Click:

====================  =======  ============================================
annotation            bytes    set by
====================  =======  ============================================
DST_IP                0-3      GetIPAddress, IPEncap, IPsecEncap, IPRewriter
PAINT                 17       Paint (read by PaintSwitch)
FIX_IP_SRC            19       IPsecEncap
VLAN_TCI              20-21    VLANDecap (read by VLANEncap(VLAN_TCI ANNO))
IPSEC_SPI             32-35    RadixIPsecLookup
IPSEC_SA_DATA_REF     40-47    RadixIPsecLookup (held as ``Packet.sa``)
====================  =======  ============================================

User annotations named by number (``GetEtherAddress(ANNO 4, ...)``) are byte
offsets into the same area.
"""

from __future__ import annotations

import struct

ANNO_SIZE = 48
DST_IP_ANNO = 0
PAINT_ANNO = 17
FIX_IP_SRC_ANNO = 19
VLAN_TCI_ANNO = 20
IPSEC_SPI_ANNO = 32
HEADROOM = 96  # bytes kept in front of a received frame for encapsulations

# named annotations Click's AnnoArg accepts (name -> (offset, size))
NAMED_ANNOS = {
    "DST_IP": (DST_IP_ANNO, 4),
    "PAINT": (PAINT_ANNO, 1),
    "FIX_IP_SRC": (FIX_IP_SRC_ANNO, 1),
    "VLAN_TCI": (VLAN_TCI_ANNO, 2),
    "IPSEC_SPI": (IPSEC_SPI_ANNO, 4),
}


class Packet:
    """One packet; ``buf[s:]`` is its data."""

    __slots__ = ("buf", "s", "mh", "nh", "th", "anno", "sa")

    def __init__(self, data: bytes | bytearray, headroom: int = HEADROOM) -> None:
        buf = bytearray(headroom)
        buf += data
        self.buf = buf
        self.s = headroom
        self.mh = -1
        self.nh = -1
        self.th = -1
        self.anno = bytearray(ANNO_SIZE)
        self.sa = None  # IPsec security association (IPSEC_SA_DATA_REFERENCE_ANNO)

    # -- data
    def data(self) -> bytes:
        return bytes(self.buf[self.s :])

    def __len__(self) -> int:
        return len(self.buf) - self.s

    def clone(self) -> Packet:
        q = Packet.__new__(Packet)
        q.buf = bytearray(self.buf)
        q.s, q.mh, q.nh, q.th = self.s, self.mh, self.nh, self.th
        q.anno = bytearray(self.anno)
        q.sa = self.sa
        return q

    def pull(self, n: int) -> bool:
        """Remove ``n`` bytes from the front; False if the packet is shorter."""
        if n > len(self.buf) - self.s:
            return False
        self.s += n
        return True

    def push(self, n: int) -> None:
        """Add ``n`` bytes at the front (the old bytes there come back, as in
        Click; missing headroom is added as zero bytes)."""
        if self.s >= n:
            self.s -= n
            return
        grow = n - self.s + HEADROOM
        self.buf[0:0] = bytes(grow)
        self.s += grow - n
        if self.mh >= 0:
            self.mh += grow
        if self.nh >= 0:
            self.nh += grow
        if self.th >= 0:
            self.th += grow

    def take(self, n: int) -> bool:
        """Remove ``n`` bytes from the end."""
        if n > len(self.buf) - self.s:
            return False
        if n:
            del self.buf[len(self.buf) - n :]
        return True

    def put(self, data: bytes) -> None:
        self.buf += data

    # -- annotations
    def anno_u16(self, off: int) -> int:
        a = self.anno
        return (a[off] << 8) | a[off + 1]

    def set_anno_u16(self, off: int, v: int) -> None:
        self.anno[off] = (v >> 8) & 0xFF
        self.anno[off + 1] = v & 0xFF

    @property
    def dst_ip_anno(self) -> bytes:
        return bytes(self.anno[0:4])

    def set_dst_ip_anno(self, addr: bytes) -> None:
        self.anno[0:4] = addr

    # -- IP header
    def set_ip_header(self, at: int) -> None:
        """Mark the IP header at absolute index ``at`` (its length from IHL)."""
        self.nh = at
        b = self.buf
        if at < len(b) and (b[at] >> 4) == 4:
            self.th = at + ((b[at] & 0x0F) << 2)
        elif at < len(b) and (b[at] >> 4) == 6:
            self.th = at + 40
        else:
            self.th = at + 20


# ---------------------------------------------------------------- checksums


def checksum(data: bytes | bytearray | memoryview) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def checksum_adjust(old_sum: int, old: bytes, new: bytes) -> int:
    """Incremental update of a checksum field (RFC 1624, eqn. 3) when the
    covered bytes ``old`` (even length) become ``new``."""
    s = (~old_sum) & 0xFFFF
    for k in range(0, len(old), 2):
        s += (~((old[k] << 8) | old[k + 1])) & 0xFFFF
        s += (new[k] << 8) | new[k + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip_header(
    src: bytes, dst: bytes, proto: int, length: int, ident: int = 0, ttl: int = 250, tos: int = 0, df: bool = False
) -> bytearray:
    """A 20-byte IPv4 header with a correct checksum."""
    h = bytearray(
        struct.pack("!BBHHHBBH4s4s", 0x45, tos, length, ident & 0xFFFF, 0x4000 if df else 0, ttl, proto, 0, src, dst)
    )
    c = checksum(h)
    h[10], h[11] = c >> 8, c & 0xFF
    return h
