"""Click's IPsec ESP elements: RadixIPsecLookup, IPsecESPEncap,
IPsecESPUnencap, IPsecAuthHMACSHA1, IPsecAES, IPsecEncap.

They follow Click's ``elements/ipsec`` byte for byte, so a packet this
runtime encrypts is decrypted by a Click binary and the reverse:

* RadixIPsecLookup(ADDR/MASK [GW] OUT [SPI ENC_KEY AUTH_KEY REPLAY OOSIZE], ...)
  routes on the destination IP annotation.  Output 1 means "encrypt": the
  packet gets the route's SPI (IPSEC_SPI annotation) and security
  association.  Output 0 means "decrypt": the packet (data at its IP header)
  must be ESP (else output 2) and its SPI must be in the element's SA table
  (else dropped).  Keys are 16 bytes.
* IPsecESPEncap prepends the ESP header (SPI, sequence number, 8-byte random
  IV) and appends RFC 2406 padding (1, 2, 3, ..., pad length, next header =
  the inner IP protocol) to a multiple of 8 bytes.
* IPsecAuthHMACSHA1(0) appends HMAC-SHA1-96 (16-byte key) of the whole ESP
  packet; IPsecAuthHMACSHA1(1) checks and removes it (bad digest: output 1,
  or dropped).
* IPsecAES(1) / IPsecAES(0) encrypt / decrypt in place with AES-128, in
  Click's CBC variant: 16-byte blocks after the ESP header, each block's
  first 8 bytes XORed with the previous ciphertext block's first 8 bytes
  (the 8-byte ESP IV for the first block), up to the digest -- and the first
  8 digest bytes too when the payload is not a multiple of 16 bytes.  (This
  is not RFC 3602 AES-CBC: a standard ESP peer cannot read it; Click can.)
* IPsecESPUnencap checks the sequence number against the replay window,
  strips the ESP header and checks and strips the padding.
* IPsecEncap(PROTO) prepends an IPv4 header to the destination IP
  annotation, source 0.0.0.0 (Click leaves it to FixIPSrc), TTL 250.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from backends.click.runtime.args import ConfigError, parse_int, parse_ip, parse_ip_prefix, spacevec, unquote
from backends.click.runtime.elements.base import Element, SimpleElement, element
from backends.click.runtime.elements.ip import parse_proto
from backends.click.runtime.packet import DST_IP_ANNO, FIX_IP_SRC_ANNO, IPSEC_SPI_ANNO, Packet, checksum

ESP_HEADER = 16  # SPI, sequence number, 8-byte IV
DIGEST = 12  # HMAC-SHA1-96
KEY_SIZE = 16


class SA:
    """A security association (Click's SADataTuple)."""

    __slots__ = ("enc_key", "auth_key", "replay_start", "cur_rpl", "ooowin", "bitmap", "lastseq", "_enc", "_dec")

    def __init__(self, enc_key: bytes, auth_key: bytes, replay: int, ooowin: int) -> None:
        self.enc_key = enc_key
        self.auth_key = auth_key
        self.replay_start = replay
        self.cur_rpl = replay
        self.lastseq = replay
        self.ooowin = ooowin
        self.bitmap = 0
        cipher = Cipher(algorithms.AES(enc_key), modes.ECB())
        self._enc = cipher.encryptor()
        self._dec = cipher.decryptor()

    def copy(self) -> SA:
        return SA(self.enc_key, self.auth_key, self.replay_start, self.ooowin)

    def next_seq(self) -> int:
        seq = self.cur_rpl
        self.cur_rpl = (seq + 1) & 0xFFFFFFFF
        if seq == 0:  # the counter rolled over: back to the agreed start
            self.cur_rpl = self.replay_start
        return seq

    def replay_ok(self, seq: int) -> bool:
        """Click's replay window check (IPsecESPUnencap::checkreplaywindow)."""
        if seq == 0:
            return False
        if seq == self.replay_start and self.lastseq != self.replay_start:
            self.bitmap, self.lastseq = 0, seq
            return True
        win = self.ooowin
        if seq > self.lastseq:
            diff = seq - self.lastseq
            self.bitmap = ((self.bitmap << diff) | 1) & 0xFFFFFFFFFFFFFFFF if diff < win else 1
            self.lastseq = seq
            return True
        diff = self.lastseq - seq
        if diff >= win:
            return False
        if self.bitmap & (1 << diff):
            return False
        self.bitmap |= 1 << diff
        return True


class Route:
    __slots__ = ("addr", "mask", "gw", "port", "spi", "sa")

    def __init__(self, addr: int, mask: int, gw: bytes | None, port: int, spi: int, sa: SA | None) -> None:
        self.addr, self.mask, self.gw, self.port, self.spi, self.sa = addr, mask, gw, port, spi, sa


def parse_route(text: str) -> Route:
    words = spacevec(text)
    if not words:
        raise ConfigError("empty route")
    addr, mask = parse_ip_prefix(words[0])
    k = 1
    gw = None
    if k < len(words) and words[k] == "-":
        k += 1
    elif k < len(words) and "." in words[k]:
        gw = parse_ip(words[k])
        k += 1
    if k >= len(words):
        raise ConfigError(f"route {text!r}: output missing (expected 'ADDR/MASK [GATEWAY] OUTPUT')")
    port = parse_int(words[k], 0, None, "output")
    k += 1
    rest = words[k:]
    if not rest:
        return Route(addr, mask, gw, port, 0, None)
    if len(rest) != 5:
        raise ConfigError(f"route {text!r}: IPsec extension needs SPI ENCRYPT_KEY AUTH_KEY REPLAY OOSIZE")
    spi = parse_int(rest[0], 0, 0xFFFFFFFF, "SPI")
    enc, auth = unquote(rest[1]), unquote(rest[2])
    if len(enc) != KEY_SIZE or len(auth) != KEY_SIZE:
        raise ConfigError(f"route {text!r}: keys must be {KEY_SIZE} bytes (got {len(enc)} and {len(auth)})")
    replay = parse_int(rest[3], 0, 0xFFFFFFFF, "REPLAY")
    oosize = parse_int(rest[4], 0, 255, "OOSIZE")
    return Route(addr, mask, gw, port, spi, SA(enc, auth, replay, oosize))


@element
class RadixIPsecLookup(Element):
    class_name = "RadixIPsecLookup"

    def configure(self, args: tuple[str, ...]) -> None:
        self.routes: list[Route] = []
        self.sa_table: dict[int, SA] = {}
        for k, a in enumerate(args):
            r = parse_route(a)
            if r.port >= self.noutputs:
                raise ConfigError(f"argument {k + 1}: output {r.port} out of range")
            self.routes.append(r)
            if r.sa is not None:
                self.sa_table[r.spi] = r.sa.copy()  # Click keeps a copy in its SA table
        self.routes.sort(key=lambda r: -bin(r.mask).count("1"))

    def lookup(self, addr: int) -> Route | None:
        for r in self.routes:
            if addr & r.mask == r.addr:
                return r
        return None

    def push(self, port: int, p: Packet) -> None:
        a = p.anno
        r = self.lookup(int.from_bytes(a[0:4], "big"))
        if r is None:
            self.drops += 1
            return
        out = r.port
        if out == 1:
            a[IPSEC_SPI_ANNO : IPSEC_SPI_ANNO + 4] = r.spi.to_bytes(4, "big")
            p.sa = r.sa
        elif out == 0:
            b, s = p.buf, p.s
            if len(b) - s < 24:
                self.drops += 1
                return
            if b[s + 9] != 50:
                out = 2
            sa = self.sa_table.get(int.from_bytes(b[s + 20 : s + 24], "big"))
            if sa is None:
                self.drops += 1
                return
            p.sa = sa
        if r.gw is not None:
            a[DST_IP_ANNO : DST_IP_ANNO + 4] = r.gw
        self.checked_push(out, p)


@element
class IPsecESPEncap(SimpleElement):
    class_name = "IPsecESPEncap"

    def configure(self, args: tuple[str, ...]) -> None:
        if len(args) > 1:
            raise ConfigError("IPsecESPEncap takes no arguments (the SPI comes from the annotation)")

    def action(self, p: Packet) -> Packet | None:
        sa = p.sa
        if sa is None:
            self.drops += 1
            return None
        ip_p = p.buf[p.nh + 9] if 0 <= p.nh and p.nh + 10 <= len(p.buf) else 0
        plen = len(p.buf) - p.s
        padding = ((8 - ((plen + 2) % 8)) % 8) + 2
        p.push(ESP_HEADER)
        s = p.s
        b = p.buf
        b[s : s + 4] = p.anno[IPSEC_SPI_ANNO : IPSEC_SPI_ANNO + 4]
        b[s + 4 : s + 8] = sa.next_seq().to_bytes(4, "big")
        b[s + 8 : s + 16] = self.router.random_bytes(8)
        p.put(bytes(range(1, padding - 1)) + bytes([padding - 2, ip_p]))
        return p


@element
class IPsecESPUnencap(SimpleElement):
    class_name = "IPsecESPUnencap"

    def action(self, p: Packet) -> Packet | None:
        sa = p.sa
        b, s = p.buf, p.s
        if sa is None or len(b) - s < ESP_HEADER + 2:
            self.drops += 1
            return None
        if not sa.replay_ok(int.from_bytes(b[s + 4 : s + 8], "big")):
            self.drops += 1
            return None
        p.pull(ESP_HEADER)
        s = p.s
        n = len(b) - s
        if b[-2] != b[-3] and b[-2] != 0:  # invalid padding length
            self.drops += 1
            return None
        padlen = b[-2]
        if padlen + 2 > n or b[len(b) - padlen - 2 : len(b) - 2] != bytes(range(1, padlen + 1)):
            self.drops += 1  # corrupt padding
            return None
        p.take(padlen + 2)
        return p


@element
class IPsecAuthHMACSHA1(SimpleElement):
    class_name = "IPsecAuthHMACSHA1"
    stat_keys = ("bad_digests",)

    def configure(self, args: tuple[str, ...]) -> None:
        if len(args) != 1:
            raise ConfigError("IPsecAuthHMACSHA1(VERIFY): one argument, 0 (compute) or 1 (verify)")
        self.verify = parse_int(args[0], 0, 1, "VERIFY") == 1
        self.bad_digests = 0

    def _digest(self, key: bytes, data: bytes | bytearray) -> bytes:
        return hmac.new(key, data, hashlib.sha1).digest()[:DIGEST]

    def action(self, p: Packet) -> Packet | None:
        sa = p.sa
        if sa is None:
            self.drops += 1
            return None
        b, s = p.buf, p.s
        if not self.verify:
            p.put(self._digest(sa.auth_key, b[s:]))
            return p
        if len(b) - s < DIGEST:
            self.drops += 1
            return None
        end = len(b) - DIGEST
        if not hmac.compare_digest(self._digest(sa.auth_key, b[s:end]), bytes(b[end:])):
            self.bad_digests += 1
            self.checked_push(1, p)
            return None
        p.take(DIGEST)
        return p


def _xor8(a: bytes | bytearray, b: bytes | bytearray) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(8, "big")


@element
class IPsecAES(SimpleElement):
    class_name = "IPsecAES"

    def configure(self, args: tuple[str, ...]) -> None:
        if len(args) != 1:
            raise ConfigError("IPsecAES(ENCRYPT): one argument, 1 (encrypt) or 0 (decrypt)")
        self.encrypt = parse_int(args[0], 0, 1, "ENCRYPT") == 1

    def action(self, p: Packet) -> Packet | None:
        sa = p.sa
        b, s = p.buf, p.s
        n = len(b) - s
        plen = n - ESP_HEADER - DIGEST
        if plen % 16:
            plen += 8
        if sa is None or plen <= 0 or plen % 16 or ESP_HEADER + plen > n:
            self.drops += 1
            return None
        start = s + ESP_HEADER
        if self.encrypt:
            prev = bytes(b[s + 8 : s + 16])
            enc = sa._enc.update
            out = bytearray()
            for k in range(start, start + plen, 16):
                c = enc(_xor8(b[k : k + 8], prev) + b[k + 8 : k + 16])
                out += c
                prev = c[:8]
            b[start : start + plen] = out
        else:
            cipher = bytes(b[start : start + plen])
            plain = bytearray(sa._dec.update(cipher))
            prev = bytes(b[s + 8 : s + 16])
            for k in range(0, plen, 16):
                plain[k : k + 8] = _xor8(plain[k : k + 8], prev)
                prev = cipher[k : k + 8]
            b[start : start + plen] = plain
        return p


@element
class IPsecEncap(SimpleElement):
    class_name = "IPsecEncap"

    def configure(self, args: tuple[str, ...]) -> None:
        if len(args) != 1:
            raise ConfigError("IPsecEncap(PROTO): one argument")
        self.proto = parse_proto(args[0])
        self.ident = 0

    def action(self, p: Packet) -> Packet:
        p.push(20)
        b, s = p.buf, p.s
        length = len(b) - s
        dst = bytes(p.anno[DST_IP_ANNO : DST_IP_ANNO + 4])
        h = bytearray(20)
        h[0] = 0x45
        h[2], h[3] = (length >> 8) & 0xFF, length & 0xFF
        h[4], h[5] = (self.ident >> 8) & 0xFF, self.ident & 0xFF
        self.ident = (self.ident + 1) & 0xFFFF
        h[8] = 250
        h[9] = self.proto
        h[16:20] = dst
        c = checksum(h)
        h[10], h[11] = c >> 8, c & 0xFF
        b[s : s + 20] = h
        p.nh, p.th = s, s + 20
        p.anno[FIX_IP_SRC_ANNO] = 1
        return p
