"""Rate splitters: RatedSplitter (packets per second) and
BandwidthRatedSplitter (bytes per second), policers built on a token bucket.

As in Click, the bucket fills at RATE and holds at most its capacity: by
default the tokens of 20 ms (BURST_DURATION), or BURST_SIZE packets /
BURST_BYTES bytes.  A packet that finds enough tokens (one, or its length in
bytes) takes them and leaves by output 0; the others leave by output 1
(dropped when output 1 is not connected).  The bucket starts full.
"""

from __future__ import annotations

from backends.click.runtime.args import (
    ConfigError,
    convert,
    parse_bandwidth,
    parse_int,
    parse_seconds,
    read_args,
)
from backends.click.runtime.elements.base import Element, element
from backends.click.runtime.packet import Packet

DEFAULT_BURST_DURATION = 0.020


@element
class RatedSplitter(Element):
    """RatedSplitter(RATE [, keywords BURST_DURATION, BURST_SIZE])."""

    class_name = "RatedSplitter"
    bandwidth = False
    stat_keys = ("passed", "split")

    def configure(self, args: tuple[str, ...]) -> None:
        burst_kw = "BURST_BYTES" if self.bandwidth else "BURST_SIZE"
        raw = read_args(args, ("RATE",), ("BURST_DURATION", burst_kw))
        if self.bandwidth:
            self.rate = convert(raw, "RATE", parse_bandwidth)
        else:
            self.rate = float(convert(raw, "RATE", lambda t: parse_int(t, 0, None, "rate")))
        if "BURST_DURATION" in raw and burst_kw in raw:
            raise ConfigError(f"BURST_DURATION and {burst_kw} are exclusive")
        if burst_kw in raw:
            cap = float(convert(raw, burst_kw, lambda t: parse_int(t, 1, None, "burst")))
        else:
            dur = convert(raw, "BURST_DURATION", parse_seconds, DEFAULT_BURST_DURATION)
            cap = max(1.0, self.rate * dur)
        self.capacity = cap
        self.tokens = cap
        self.last: float | None = None
        self.passed = 0
        self.split = 0

    def _refill(self) -> None:
        now = self.router.now()
        if self.last is not None and now > self.last:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def push(self, port: int, p: Packet) -> None:
        self._refill()
        need = (len(p.buf) - p.s) if self.bandwidth else 1
        if self.tokens >= need:
            self.tokens -= need
            self.passed += 1
            self.out0(p)
        else:
            self.split += 1
            self.checked_push(1, p)


@element
class BandwidthRatedSplitter(RatedSplitter):
    """BandwidthRatedSplitter(RATE [, keywords BURST_DURATION, BURST_BYTES]); RATE a bandwidth."""

    class_name = "BandwidthRatedSplitter"
    bandwidth = True
