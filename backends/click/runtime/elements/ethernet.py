"""Ethernet and 802.1Q elements: EtherEncap, VLANEncap, VLANDecap,
GetEtherAddress, StoreEtherAddress."""

from __future__ import annotations

from backends.click.runtime.args import (
    ConfigError,
    convert,
    parse_anno,
    parse_bool,
    parse_ether,
    parse_int,
    parse_offset_word,
    read_args,
)
from backends.click.runtime.elements.base import SimpleElement, element
from backends.click.runtime.packet import VLAN_TCI_ANNO, Packet


@element
class EtherEncap(SimpleElement):
    """EtherEncap(ETHERTYPE, SRC, DST): prepends an Ethernet header."""

    class_name = "EtherEncap"

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("ETHERTYPE", "SRC", "DST"))
        etype = convert(raw, "ETHERTYPE", lambda t: parse_int(t, 0, 0xFFFF, "ethertype"))
        self.header = convert(raw, "DST", parse_ether) + convert(raw, "SRC", parse_ether) + etype.to_bytes(2, "big")

    def action(self, p: Packet) -> Packet:
        p.push(14)
        s = p.s
        p.buf[s : s + 14] = self.header
        p.mh = s
        return p


@element
class VLANEncap(SimpleElement):
    """VLANEncap([VLAN_TCI, VLAN_PCP], keywords VLAN_ID, VLAN_PCP, NATIVE_VLAN, ETHERTYPE).

    Inserts an 802.1Q shim after the Ethernet addresses.  VLAN_TCI ``ANNO``
    takes the TCI from the VLAN_TCI annotation.  A packet whose VLAN id
    equals NATIVE_VLAN (default 0) gets no shim."""

    class_name = "VLANEncap"

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("VLAN_TCI", "VLAN_PCP"), ("VLAN_ID", "NATIVE_VLAN", "ETHERTYPE"), mandatory=0)
        if ("VLAN_TCI" in raw) == ("VLAN_ID" in raw):
            raise ConfigError("set exactly one of VLAN_TCI and VLAN_ID")
        self.use_anno = raw.get("VLAN_TCI", "").strip().upper() == "ANNO"
        self.pcp = convert(raw, "VLAN_PCP", lambda t: parse_int(t, 0, 7, "VLAN_PCP"))
        if self.use_anno:
            tci = 0
        elif "VLAN_TCI" in raw:
            tci = convert(raw, "VLAN_TCI", lambda t: parse_int(t, 0, 0xFFFF, "VLAN_TCI"))
        else:
            tci = convert(raw, "VLAN_ID", lambda t: parse_int(t, 0, 0xFFF, "VLAN_ID"))
        if self.pcp is not None:
            tci = (tci & 0x1FFF) | (self.pcp << 13)
        self.tci = tci
        self.native = convert(raw, "NATIVE_VLAN", lambda t: parse_int(t, -1, 0xFFF, "NATIVE_VLAN"), 0)
        self.ethertype = convert(raw, "ETHERTYPE", lambda t: parse_int(t, 0, 0xFFFF, "ETHERTYPE"), 0x8100)
        self.shim_type = self.ethertype.to_bytes(2, "big")

    def action(self, p: Packet) -> Packet:
        if self.use_anno:
            tci = (p.anno[VLAN_TCI_ANNO] << 8) | p.anno[VLAN_TCI_ANNO + 1]
            if self.pcp is not None:
                tci = (tci & 0x1FFF) | (self.pcp << 13)
        else:
            tci = self.tci
        if (tci & 0xFFF) == self.native:
            p.mh = p.s
            return p
        p.push(4)
        b, s = p.buf, p.s
        b[s : s + 12] = b[s + 4 : s + 16]
        b[s + 12 : s + 14] = self.shim_type
        b[s + 14] = tci >> 8
        b[s + 15] = tci & 0xFF
        p.mh = s
        return p


@element
class VLANDecap(SimpleElement):
    """VLANDecap([ANNO]): strips an 802.1Q shim if there is one; with ANNO
    (default true) sets the VLAN_TCI annotation to its TCI, 0 when the packet
    had none."""

    class_name = "VLANDecap"

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("ANNO",), ("WRITE_TCI_ANNO",), mandatory=0)
        self.anno = convert(raw, "ANNO", parse_bool, True)
        if "WRITE_TCI_ANNO" in raw:
            self.anno = True

    def action(self, p: Packet) -> Packet:
        b, s = p.buf, p.s
        tci = 0
        if len(b) - s >= 16 and b[s + 12] == 0x81 and b[s + 13] == 0x00:
            tci = (b[s + 14] << 8) | b[s + 15]
            b[s + 4 : s + 16] = b[s : s + 12]
            s += 4
            p.s = s
        p.mh = s
        if self.anno:
            p.anno[VLAN_TCI_ANNO] = tci >> 8
            p.anno[VLAN_TCI_ANNO + 1] = tci & 0xFF
        return p


@element
class GetEtherAddress(SimpleElement):
    """GetEtherAddress(ANNO, OFFSET): copies the 6 bytes at OFFSET (``src``
    = 6, ``dst`` = 0) into annotation bytes ANNO..ANNO+5; a packet too short
    goes to output 1 (dropped when there is none)."""

    class_name = "GetEtherAddress"

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("ANNO", "OFFSET"))
        self.anno_off = convert(raw, "ANNO", lambda t: parse_anno(t, 6))
        self.offset = convert(raw, "OFFSET", parse_offset_word)

    def action(self, p: Packet) -> Packet | None:
        start = p.s + self.offset
        if start + 6 <= len(p.buf):
            a = self.anno_off
            p.anno[a : a + 6] = p.buf[start : start + 6]
            return p
        self.checked_push(1, p)
        return None


@element
class StoreEtherAddress(SimpleElement):
    """StoreEtherAddress(ADDR, OFFSET) or StoreEtherAddress(ANNO A, OFFSET):
    writes ADDR (or annotation bytes A..A+5) at OFFSET; a packet too short
    goes to output 1 (dropped when there is none)."""

    class_name = "StoreEtherAddress"

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("ADDR", "OFFSET"), ("ANNO",), mandatory=0)
        if ("ADDR" in raw) == ("ANNO" in raw):
            raise ConfigError("specify exactly one of ADDR and ANNO")
        if "OFFSET" not in raw:
            raise ConfigError("missing OFFSET")
        self.addr = convert(raw, "ADDR", parse_ether)
        self.anno_off = convert(raw, "ANNO", lambda t: parse_anno(t, 6))
        self.offset = convert(raw, "OFFSET", parse_offset_word)

    def action(self, p: Packet) -> Packet | None:
        start = p.s + self.offset
        if start + 6 <= len(p.buf):
            if self.addr is not None:
                p.buf[start : start + 6] = self.addr
            else:
                a = self.anno_off
                p.buf[start : start + 6] = p.anno[a : a + 6]
            return p
        self.checked_push(1, p)
        return None
