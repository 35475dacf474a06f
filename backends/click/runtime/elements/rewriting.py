"""Address and port rewriting: IPRewriter and RoundRobinIPMapper.

IPRewriter keeps a mapping table indexed by flow identifier (protocol,
source address and port, destination address and port).  A TCP or UDP
packet whose flow is in the table is rewritten by its mapping and leaves by
the mapping's output, whatever input it came in on; otherwise the input
spec of its input port decides:

* ``drop`` / ``discard``: dropped;
* ``pass OUTPUT`` (also ``nochange``): sent unchanged to OUTPUT, no mapping;
* ``keep FOUTPUT ROUTPUT``: mappings that change nothing;
* ``pattern SADDR SPORT DADDR DPORT FOUTPUT ROUTPUT``: ``-`` keeps a field,
  SPORT may be a range ``L-H`` (``#`` suffix: sequential, ``?``: random; by
  default the packet's own source port when free, else a random free one);
* an element name: a mapper such as RoundRobinIPMapper picks the pattern.

A new mapping installs the forward flow (to FOUTPUT) and the reply flow
(rewritten back, to ROUTPUT).  Packets that are not TCP or UDP, second and
later fragments and packets without 8 transport bytes are sent on only by a
``pass`` input, dropped otherwise.  IP and TCP/UDP checksums are updated
incrementally (a UDP checksum of 0 stays 0); the destination IP annotation
becomes the new destination (DST_ANNO, default true).

Mappings expire (Click's defaults): UDP after 5 minutes without packets,
TCP after 24 hours once payload went both ways, 5 minutes before that, 4
minutes after a FIN or RST; none within 5 seconds of its last packet.
Expired mappings are removed every REAP_INTERVAL (default 15 minutes).
"""

from __future__ import annotations

import re
from typing import Any

from backends.click.runtime.args import (
    ConfigError,
    convert,
    parse_bool,
    parse_int,
    parse_ip,
    parse_seconds,
    read_args,
    spacevec,
)
from backends.click.runtime.elements.base import Element, element
from backends.click.runtime.packet import DST_IP_ANNO, Packet, checksum_adjust

_KEYWORDS = (
    "TCP_TIMEOUT",
    "TCP_DONE_TIMEOUT",
    "TCP_NODATA_TIMEOUT",
    "TCP_GUARANTEE",
    "UDP_TIMEOUT",
    "UDP_STREAMING_TIMEOUT",
    "UDP_GUARANTEE",
    "REAP_INTERVAL",
    "MAPPING_CAPACITY",
    "DST_ANNO",
    "REAP_TCP",
    "REAP_TCP_DONE",
    "REAP_UDP",
    "SET_REPLY_ANNO",
)

# flow id: (proto, saddr, sport, daddr, dport); addresses as 4-byte bytes
FlowID = tuple[int, bytes, int, bytes, int]


class Pattern:
    """``SADDR SPORT DADDR DPORT`` of a rewrite pattern."""

    def __init__(self, words: list[str]) -> None:
        if len(words) != 4:
            raise ConfigError("pattern needs SADDR SPORT DADDR DPORT")
        sa, sp, da, dp = words
        self.saddr = None if sa == "-" else parse_ip(sa)
        self.daddr = None if da == "-" else parse_ip(da)
        self.dport = None if dp == "-" else parse_int(dp, 0, 0xFFFF, "DPORT")
        self.sport_lo = self.sport_hi = None
        self.sequential = self.random = False
        if sp != "-":
            m = re.fullmatch(r"(\d+)(?:-(\d+))?([#?]?)", sp)
            if not m:
                raise ConfigError(f"bad SPORT {sp!r}")
            lo = parse_int(m.group(1), 0, 0xFFFF, "SPORT")
            hi = parse_int(m.group(2), lo, 0xFFFF, "SPORT") if m.group(2) else lo
            self.sport_lo, self.sport_hi = lo, hi
            self.sequential = m.group(3) == "#"
            self.random = m.group(3) == "?"
        self._next = self.sport_lo

    def rewrite(self, rw: IPRewriter, flow: FlowID) -> FlowID | None:
        proto, sa, sp, da, dp = flow
        nsa = self.saddr if self.saddr is not None else sa
        nda = self.daddr if self.daddr is not None else da
        ndp = self.dport if self.dport is not None else dp
        nsp = sp
        if self.sport_lo is not None:
            lo, hi = self.sport_lo, self.sport_hi

            def free(port: int) -> bool:
                return (proto, nda, ndp, nsa, port) not in rw.map

            if not (self.sequential or self.random) and lo <= sp <= hi and free(sp):
                nsp = sp
            else:
                span = hi - lo + 1
                start = self._next if self.sequential else lo + rw.router.rng.randrange(span)
                for k in range(span):
                    port = lo + (start - lo + k) % span
                    if free(port):
                        nsp = port
                        if self.sequential:
                            self._next = lo + (port - lo + 1) % span
                        break
                else:
                    return None
        return (proto, nsa, nsp, nda, ndp)


def _parse_pattern_spec(words: list[str]) -> tuple[Pattern, int, int]:
    if len(words) != 6:
        raise ConfigError("expected 'SADDR SPORT DADDR DPORT FOUTPUT ROUTPUT'")
    return Pattern(words[:4]), parse_int(words[4], 0, None, "FOUTPUT"), parse_int(words[5], 0, None, "ROUTPUT")


class Mapping:
    """One direction of a flow: rewrite to ``new`` and leave by ``output``."""

    __slots__ = ("new", "output", "flow", "reply")

    def __init__(self, new: FlowID, output: int, flow: Flow, reply: bool) -> None:
        self.new, self.output, self.flow, self.reply = new, output, flow, reply


class Flow:
    __slots__ = ("fwd_key", "rev_key", "proto", "expiry", "guarantee", "data_dirs", "done")

    def __init__(self, fwd_key: FlowID, rev_key: FlowID) -> None:
        self.fwd_key, self.rev_key, self.proto = fwd_key, rev_key, fwd_key[0]
        self.expiry = self.guarantee = 0.0
        self.data_dirs = 0
        self.done = False


@element
class RoundRobinIPMapper(Element):
    """RoundRobinIPMapper(PATTERN, ...): an IPRewriter mapper that gives each
    new flow the next pattern (``SADDR SPORT DADDR DPORT FOUTPUT ROUTPUT``)."""

    class_name = "RoundRobinIPMapper"

    def configure(self, args: tuple[str, ...]) -> None:
        if not args:
            raise ConfigError("no patterns")
        self.patterns = []
        for k, a in enumerate(args):
            try:
                self.patterns.append(_parse_pattern_spec(spacevec(a)))
            except ConfigError as e:
                raise ConfigError(f"pattern {k}: {e}") from None
        self.next = 0

    def rewrite_flow(self, rw: IPRewriter, flow: FlowID) -> tuple[FlowID | None, int, int]:
        pat, fout, rout = self.patterns[self.next]
        self.next = (self.next + 1) % len(self.patterns)
        return pat.rewrite(rw, flow), fout, rout


class _Spec:
    def __init__(
        self, kind: str, fout: int = 0, rout: int = 0, pattern: Pattern | None = None, mapper: str | None = None
    ) -> None:
        self.kind, self.fout, self.rout, self.pattern, self.mapper_name = kind, fout, rout, pattern, mapper
        self.mapper: Any = None


@element
class IPRewriter(Element):
    class_name = "IPRewriter"
    stat_keys = ("table_size", "mapping_failures")

    def configure(self, args: tuple[str, ...]) -> None:
        specs, kw = [], []
        for a in args:
            words = spacevec(a)
            if words and re.fullmatch(r"[A-Z_][A-Z0-9_]*", words[0]) and words[0] in _KEYWORDS:
                kw.append(a)
            else:
                specs.append(words)
        raw = read_args(kw, (), _KEYWORDS, mandatory=0)
        self.udp_timeout = convert(raw, "UDP_TIMEOUT", parse_seconds, 300.0)
        self.udp_guarantee = convert(raw, "UDP_GUARANTEE", parse_seconds, 5.0)
        self.tcp_timeout = convert(raw, "TCP_TIMEOUT", parse_seconds, 86400.0)
        self.tcp_done_timeout = convert(raw, "TCP_DONE_TIMEOUT", parse_seconds, 240.0)
        self.tcp_nodata_timeout = convert(raw, "TCP_NODATA_TIMEOUT", parse_seconds, 300.0)
        self.tcp_guarantee = convert(raw, "TCP_GUARANTEE", parse_seconds, 5.0)
        self.reap_interval = convert(raw, "REAP_INTERVAL", parse_seconds, 900.0)
        self.dst_anno = convert(raw, "DST_ANNO", parse_bool, True)
        self.specs: list[_Spec] = []
        for k, words in enumerate(specs):
            try:
                self.specs.append(self._spec(words))
            except ConfigError as e:
                raise ConfigError(f"input spec {k}: {e}") from None
        if len(self.specs) != self.ninputs:
            raise ConfigError(f"{len(self.specs)} input specs for {self.ninputs} inputs (one spec per input)")
        for s in self.specs:
            for o in (s.fout, s.rout):
                if s.kind != "drop" and o >= self.noutputs:
                    raise ConfigError(f"output {o} out of range ({self.noutputs} outputs)")
        self.map: dict[FlowID, Mapping] = {}
        self.mapping_failures = 0
        self._next_reap = None

    @staticmethod
    def _spec(words: list[str]) -> _Spec:
        if not words:
            raise ConfigError("empty input spec")
        w = words[0]
        if w in ("drop", "discard") and len(words) == 1:
            return _Spec("drop")
        if w in ("pass", "nochange"):
            out = parse_int(words[1], 0, None, "OUTPUT") if len(words) > 1 else 0
            if len(words) > 2:
                raise ConfigError(f"'{w} OUTPUT' takes one output")
            return _Spec("pass", out, out)
        if w == "keep":
            if len(words) != 3:
                raise ConfigError("expected 'keep FOUTPUT ROUTPUT'")
            return _Spec("keep", parse_int(words[1], 0), parse_int(words[2], 0))
        if w == "pattern":
            if len(words) == 4:
                raise ConfigError("named patterns (IPRewriterPatterns) are not supported by the fsc Click runtime")
            pat, fout, rout = _parse_pattern_spec(words[1:])
            return _Spec("pattern", fout, rout, pat)
        if len(words) == 1 and re.fullmatch(r"[A-Za-z_@][\w@/]*", w):
            return _Spec("mapper", mapper=w)
        raise ConfigError(f"unknown input spec {' '.join(words)!r}")

    def initialize(self) -> None:
        for s in self.specs:
            if s.kind == "mapper":
                e = self.router.find_element(s.mapper_name, self.name)
                if e is None or not hasattr(e, "rewrite_flow"):
                    raise ConfigError(f"{s.mapper_name!r} is not an IPMapper element")
                s.mapper = e

    @property
    def table_size(self) -> int:
        return len(self.map) // 2

    # -- the mapping table
    def reap(self) -> int:
        now = self.router.now()
        dead = {id(m.flow): m.flow for m in self.map.values() if m.flow.expiry <= now and m.flow.guarantee <= now}
        for f in dead.values():
            self.map.pop(f.fwd_key, None)
            self.map.pop(f.rev_key, None)
        return len(dead)

    def _add(self, key: FlowID, new: FlowID, fout: int, rout: int) -> Mapping | None:
        proto, sa, sp, da, dp = key
        _, nsa, nsp, nda, ndp = new
        rev_key = (proto, nda, ndp, nsa, nsp)
        if rev_key in self.map:
            return None
        flow = Flow(key, rev_key)
        fwd = Mapping(new, fout, flow, False)
        self.map[key] = fwd
        self.map[rev_key] = Mapping((proto, da, dp, sa, sp), rout, flow, True)
        return fwd

    def push(self, port: int, p: Packet) -> None:
        b, n = p.buf, p.nh
        L = len(b)
        spec = self.specs[port]
        if n < 0 or n + 20 > L:
            self.drops += 1
            return
        proto = b[n + 9]
        t = n + ((b[n] & 15) << 2)
        if (proto != 6 and proto != 17) or (b[n + 6] & 0x1F) or b[n + 7] or t + 8 > L:
            if spec.kind == "pass":
                self.checked_push(spec.fout, p)
            else:
                self.drops += 1
            return
        key = (
            proto,
            bytes(b[n + 12 : n + 16]),
            (b[t] << 8) | b[t + 1],
            bytes(b[n + 16 : n + 20]),
            (b[t + 2] << 8) | b[t + 3],
        )
        m = self.map.get(key)
        if m is None:
            kind = spec.kind
            if kind == "pass":
                self.checked_push(spec.fout, p)
                return
            if kind == "drop":
                self.drops += 1
                return
            if kind == "keep":
                new, fout, rout = key, spec.fout, spec.rout
            elif kind == "pattern":
                new, fout, rout = spec.pattern.rewrite(self, key), spec.fout, spec.rout
            else:
                new, fout, rout = spec.mapper.rewrite_flow(self, key)
            m = self._add(key, new, fout, rout) if new is not None else None
            if m is None:
                self.mapping_failures += 1
                self.drops += 1
                return
        self._apply(p, n, t, key, m.new)
        self._touch(m, p, b, t, proto)
        self.checked_push(m.output, p)

    def _apply(self, p: Packet, n: int, t: int, old: FlowID, new: FlowID) -> None:
        proto, osa, osp, oda, odp = old
        _, nsa, nsp, nda, ndp = new
        if old == new:
            if self.dst_anno:
                p.anno[DST_IP_ANNO : DST_IP_ANNO + 4] = nda
            return
        b = p.buf
        old_addrs, new_addrs = osa + oda, nsa + nda
        old_ports, new_ports = bytes(b[t : t + 4]), bytes(((nsp << 16) | ndp).to_bytes(4, "big"))
        if old_addrs != new_addrs:
            b[n + 12 : n + 20] = new_addrs
            c = checksum_adjust((b[n + 10] << 8) | b[n + 11], old_addrs, new_addrs)
            b[n + 10], b[n + 11] = c >> 8, c & 0xFF
        b[t : t + 4] = new_ports
        at = t + 16 if proto == 6 else t + 6
        if at + 2 <= len(b):
            csum = (b[at] << 8) | b[at + 1]
            if proto == 6 or csum != 0:
                c = checksum_adjust(csum, old_addrs + old_ports, new_addrs + new_ports)
                if proto == 17 and c == 0:
                    c = 0xFFFF
                b[at], b[at + 1] = c >> 8, c & 0xFF
        if self.dst_anno:
            p.anno[DST_IP_ANNO : DST_IP_ANNO + 4] = nda

    def _touch(self, m: Mapping, p: Packet, b: bytearray, t: int, proto: int) -> None:
        now = self.router.now()
        f = m.flow
        if proto == 17:
            f.expiry = now + self.udp_timeout
            f.guarantee = now + self.udp_guarantee
        else:
            flags = b[t + 13] if t + 14 <= len(b) else 0
            if flags & 0x05:  # FIN or RST
                f.done = True
            hl = (b[t + 12] >> 4) * 4 if t + 13 <= len(b) else 20
            n = p.nh
            total = (b[n + 2] << 8) | b[n + 3]
            if total - (t - n) - hl > 0:
                f.data_dirs |= 2 if m.reply else 1
            if f.done:
                timeout = self.tcp_done_timeout
            elif f.data_dirs == 3:
                timeout = self.tcp_timeout
            else:
                timeout = self.tcp_nodata_timeout
            f.expiry = now + timeout
            f.guarantee = now + self.tcp_guarantee
        if self._next_reap is None:
            self._next_reap = now + self.reap_interval
        elif now >= self._next_reap:
            self._next_reap = now + self.reap_interval
            self.reap()
