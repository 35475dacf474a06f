"""IP elements: MarkIPHeader, StripIPHeader, UnstripIPHeader, IPEncap, GetIPAddress."""

from __future__ import annotations

from backends.click.runtime.args import ConfigError, convert, parse_anno, parse_bool, parse_int, parse_ip, read_args
from backends.click.runtime.elements.base import SimpleElement, element
from backends.click.runtime.packet import DST_IP_ANNO, Packet, checksum

IP_PROTO_NAMES = {
    "icmp": 1,
    "igmp": 2,
    "ipip": 4,
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmp6": 58,
    "icmpv6": 58,
    "sctp": 132,
}


def parse_proto(text: str) -> int:
    t = text.strip().lower()
    if t in IP_PROTO_NAMES:
        return IP_PROTO_NAMES[t]
    return parse_int(t, 0, 255, "IP protocol")


@element
class MarkIPHeader(SimpleElement):
    """MarkIPHeader([OFFSET]): the IP header starts OFFSET bytes into the
    packet (default 0); its length comes from the IHL field."""

    class_name = "MarkIPHeader"

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("OFFSET",), (), mandatory=0)
        self.offset = convert(raw, "OFFSET", lambda t: parse_int(t, 0, None, "offset"), 0)

    def action(self, p: Packet) -> Packet:
        at = p.s + self.offset
        b = p.buf
        p.nh = at
        p.th = at + ((b[at] & 0x0F) << 2) if at < len(b) else at
        return p


@element
class StripIPHeader(SimpleElement):
    """StripIPHeader: removes everything up to the transport header (the IP
    header annotation must be set)."""

    class_name = "StripIPHeader"

    def action(self, p: Packet) -> Packet | None:
        if p.th < 0:
            self.drops += 1
            return None
        n = p.th - p.s
        if n > 0 and not p.pull(n):
            p.s = len(p.buf)
        return p


@element
class UnstripIPHeader(SimpleElement):
    """UnstripIPHeader: puts back what lies between the IP header annotation and the data."""

    class_name = "UnstripIPHeader"

    def action(self, p: Packet) -> Packet:
        if 0 <= p.nh < p.s:
            p.s = p.nh
        return p


@element
class IPEncap(SimpleElement):
    """IPEncap(PROTO, SRC, DST [, keywords TOS, DSCP, TTL, DF, ECT, CE]):
    prepends a 20-byte IPv4 header (TTL 250 by default, IP ids counting up,
    checksum set); sets the destination IP annotation to DST."""

    class_name = "IPEncap"

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("PROTO", "SRC", "DST"), ("TOS", "DSCP", "TTL", "DF", "ECT", "CE"))
        self.proto = convert(raw, "PROTO", parse_proto)
        self.src = convert(raw, "SRC", parse_ip)
        self.dst = convert(raw, "DST", parse_ip)
        tos = convert(raw, "TOS", lambda t: parse_int(t, 0, 255, "TOS"))
        dscp = convert(raw, "DSCP", lambda t: parse_int(t, 0, 63, "DSCP"))
        if tos is not None and dscp is not None:
            raise ConfigError("cannot set both TOS and DSCP")
        self.tos = tos if tos is not None else (dscp << 2 if dscp is not None else 0)
        if convert(raw, "ECT", parse_bool, False):
            self.tos |= 2
        if convert(raw, "CE", parse_bool, False):
            self.tos |= 3
        self.ttl = convert(raw, "TTL", lambda t: parse_int(t, 0, 255, "TTL"), 250)
        self.df = convert(raw, "DF", parse_bool, False)
        self.ident = 0

    def action(self, p: Packet) -> Packet:
        p.push(20)
        s = p.s
        length = len(p.buf) - s
        h = bytearray(20)
        h[0] = 0x45
        h[1] = self.tos
        h[2], h[3] = (length >> 8) & 0xFF, length & 0xFF
        h[4], h[5] = (self.ident >> 8) & 0xFF, self.ident & 0xFF
        self.ident = (self.ident + 1) & 0xFFFF
        if self.df:
            h[6] = 0x40
        h[8] = self.ttl
        h[9] = self.proto
        h[12:16] = self.src
        h[16:20] = self.dst
        c = checksum(h)
        h[10], h[11] = c >> 8, c & 0xFF
        p.buf[s : s + 20] = h
        p.nh, p.th = s, s + 20
        p.anno[DST_IP_ANNO : DST_IP_ANNO + 4] = self.dst
        return p


@element
class GetIPAddress(SimpleElement):
    """GetIPAddress(OFFSET [, ANNO]): copies the 4 bytes at OFFSET into the
    destination IP address annotation (or annotation bytes ANNO..ANNO+3)."""

    class_name = "GetIPAddress"

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("OFFSET", "ANNO"), ("IP",), mandatory=1)
        self.offset = convert(raw, "OFFSET", lambda t: parse_int(t, 0, None, "offset"))
        self.anno_off = convert(raw, "ANNO", lambda t: parse_anno(t, 4), DST_IP_ANNO)
        self.relative_to_ip = convert(raw, "IP", parse_bool, False)

    def action(self, p: Packet) -> Packet | None:
        base = p.nh if self.relative_to_ip else p.s
        at = base + self.offset
        if base < 0 or at + 4 > len(p.buf):
            self.drops += 1
            return None
        a = self.anno_off
        p.anno[a : a + 4] = p.buf[at : at + 4]
        return p
