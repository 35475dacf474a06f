"""Standard elements: Null, Paint, PaintSwitch, Strip, Unstrip, StoreData, Tee."""

from __future__ import annotations

from backends.click.runtime.args import ConfigError, convert, parse_anno, parse_int, read_args, unquote
from backends.click.runtime.elements.base import Element, SimpleElement, element
from backends.click.runtime.packet import PAINT_ANNO, Packet


@element
class Null(SimpleElement):
    """Null: passes packets unchanged."""

    class_name = "Null"

    def action(self, p: Packet) -> Packet:
        return p

    def push(self, port: int, p: Packet) -> None:
        self.out0(p)

    def pull(self, port: int) -> Packet | None:
        return self.in0()


@element
class Paint(SimpleElement):
    """Paint(COLOR [, ANNO]): sets the paint annotation (byte 17, or ANNO) to COLOR."""

    class_name = "Paint"

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("COLOR", "ANNO"), (), mandatory=1)
        self.color = convert(raw, "COLOR", lambda t: parse_int(t, 0, 255, "color"))
        self.anno_off = convert(raw, "ANNO", lambda t: parse_anno(t, 1), PAINT_ANNO)

    def action(self, p: Packet) -> Packet:
        p.anno[self.anno_off] = self.color
        return p


@element
class PaintSwitch(Element):
    """PaintSwitch([ANNO]): sends each packet to output K, K = its paint
    annotation; 255 copies it to every output; no output K: dropped."""

    class_name = "PaintSwitch"

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("ANNO",), (), mandatory=0)
        self.anno_off = convert(raw, "ANNO", lambda t: parse_anno(t, 1), PAINT_ANNO)

    def push(self, port: int, p: Packet) -> None:
        k = p.anno[self.anno_off]
        if k == 255:
            n = self.noutputs
            for j in range(n):
                f = self.out[j]
                if f is not None:
                    f(p if j == n - 1 else p.clone())
            return
        if k < self.noutputs:
            f = self.out[k]
            if f is not None:
                f(p)
                return
        self.drops += 1


@element
class Strip(SimpleElement):
    """Strip(LENGTH): removes LENGTH bytes from the front (a shorter packet loses everything)."""

    class_name = "Strip"

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("LENGTH",))
        self.n = convert(raw, "LENGTH", lambda t: parse_int(t, 0, None, "length"))

    def action(self, p: Packet) -> Packet:
        n = self.n
        if not p.pull(n):
            p.s = len(p.buf)
        return p


@element
class Unstrip(SimpleElement):
    """Unstrip(LENGTH): puts LENGTH bytes back at the front (the bytes that
    were there before a Strip; zeros if the buffer has no such headroom)."""

    class_name = "Unstrip"

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("LENGTH",))
        self.n = convert(raw, "LENGTH", lambda t: parse_int(t, 0, None, "length"))

    def action(self, p: Packet) -> Packet:
        p.push(self.n)
        return p


@element
class StoreData(SimpleElement):
    """StoreData(OFFSET, DATA [, MASK]): writes DATA at OFFSET (what fits of
    it); with MASK only the bits set in MASK."""

    class_name = "StoreData"

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("OFFSET", "DATA", "MASK"), ("GROW",), mandatory=2)
        self.offset = convert(raw, "OFFSET", lambda t: parse_int(t, 0, None, "offset"))
        self.bytes = unquote(raw["DATA"])
        self.mask = unquote(raw["MASK"]) if "MASK" in raw else None
        if self.mask is not None and len(self.mask) < len(self.bytes):
            raise ConfigError("MASK shorter than DATA")

    def action(self, p: Packet) -> Packet:
        start = p.s + self.offset
        end = min(len(p.buf), start + len(self.bytes))
        if end > start:
            if self.mask is None:
                p.buf[start:end] = self.bytes[: end - start]
            else:
                b = p.buf
                for k in range(end - start):
                    m = self.mask[k]
                    b[start + k] = (b[start + k] & ~m & 0xFF) | (self.bytes[k] & m)
        return p


@element
class Tee(Element):
    """Tee([N]): a copy of each packet on every output."""

    class_name = "Tee"

    def configure(self, args: tuple[str, ...]) -> None:
        read_args(args, ("N",), (), mandatory=0)

    def push(self, port: int, p: Packet) -> None:
        n = self.noutputs
        for j in range(n):
            f = self.out[j]
            if f is not None:
                f(p if j == n - 1 else p.clone())
