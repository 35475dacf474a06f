"""Devices and the push-to-pull boundary: FromDevice, ToDevice, Queue,
Discard, Idle.

FromDevice and ToDevice name a network device; the router's transport
moves the frames (AF_PACKET sockets, or an in-memory transport for the
Python API).  ToDevice is a task: the scheduler runs it, and it pulls
packets from its input (a Queue, possibly through agnostic elements) and
sends them while the device accepts them.
"""

from __future__ import annotations

from collections import deque

from backends.click.runtime.args import convert, parse_bool, parse_int, read_args
from backends.click.runtime.elements.base import Element, element
from backends.click.runtime.packet import Packet

_FROM_KEYWORDS = (
    "SNIFFER",
    "PROMISC",
    "BURST",
    "OUTBOUND",
    "FORCE_IP",
    "METHOD",
    "CAPTURE",
    "BPF_FILTER",
    "ENCAP",
    "HEADROOM",
    "TIMESTAMP",
    "SNAPLEN",
    "ALLOW_NONEXISTENT",
    "ACTIVE",
)
_TO_KEYWORDS = ("BURST", "QUIET", "ALLOW_NONEXISTENT", "METHOD", "DEBUG")


@element
class FromDevice(Element):
    """FromDevice(DEVNAME [, keywords PROMISC, SNIFFER, OUTBOUND, BURST, ...]).

    Emits every frame the device receives on output 0, with the MAC header
    annotation at the frame start.  PROMISC true puts the device in
    promiscuous mode.  OUTBOUND (default false) also emits frames the device
    sends; the runtime never emits frames the socket sees as outgoing
    otherwise.  SNIFFER is accepted and has no effect (frames are copied, the
    kernel keeps its own)."""

    class_name = "FromDevice"
    stat_keys = ("count", "byte_count")

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("DEVNAME",), _FROM_KEYWORDS)
        self.devname = raw["DEVNAME"].strip()
        self.promisc = convert(raw, "PROMISC", parse_bool, False)
        self.outbound = convert(raw, "OUTBOUND", parse_bool, False)
        self.burst = convert(raw, "BURST", lambda t: parse_int(t, 1), 8)
        self.count = 0
        self.byte_count = 0

    def initialize(self) -> None:
        self.router.register_source(self)

    def receive(self, frame: bytes) -> None:
        """A frame from the device."""
        p = Packet(frame)
        p.mh = p.s
        self.count += 1
        self.byte_count += len(frame)
        self.out0(p)


@element
class ToDevice(Element):
    """ToDevice(DEVNAME [, keywords BURST, QUIET, ALLOW_NONEXISTENT]).

    Pulls packets from its input and sends them on the device."""

    class_name = "ToDevice"
    stat_keys = ("count", "byte_count", "errors")

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("DEVNAME",), _TO_KEYWORDS)
        self.devname = raw["DEVNAME"].strip()
        self.burst = convert(raw, "BURST", lambda t: parse_int(t, 1), 16)
        self.count = 0
        self.byte_count = 0
        self.errors = 0
        self.pending: Packet | None = None

    def initialize(self) -> None:
        self.router.register_sink(self)

    def run_task(self, budget: int = 1 << 30) -> int:
        """Send up to ``budget`` packets; returns how many went out.  Stops
        (keeping the packet) when the device cannot take more now."""
        send = self.router.transport.send
        dev = self.devname
        n = 0
        pull = self.in0
        while n < budget:
            p = self.pending
            if p is None:
                p = pull()
                if p is None:
                    break
            frame = p.buf[p.s :]
            ok = send(dev, frame)
            if ok is None:  # would block: try again later
                self.pending = p
                break
            self.pending = None
            n += 1
            if ok:
                self.count += 1
                self.byte_count += len(frame)
            else:
                self.errors += 1
        return n


@element
class Queue(Element):
    """Queue([CAPACITY]): a FIFO of at most CAPACITY packets (default 1000)
    between a push input and a pull output; packets arriving when it is full
    are dropped (or pushed to output 1 when connected)."""

    class_name = "Queue"
    stat_keys = ("length", "highwater_length", "capacity")

    def configure(self, args: tuple[str, ...]) -> None:
        raw = read_args(args, ("CAPACITY",), (), mandatory=0)
        self.capacity = convert(raw, "CAPACITY", lambda t: parse_int(t, 0), 1000)
        self.q: deque[Packet] = deque()
        self.highwater_length = 0

    @property
    def length(self) -> int:
        return len(self.q)

    def push(self, port: int, p: Packet) -> None:
        q = self.q
        if len(q) < self.capacity:
            q.append(p)
            if len(q) > self.highwater_length:
                self.highwater_length = len(q)
            self.router.wake()
        elif self.noutputs > 1 and self.out[1] is not None:
            self.out[1](p)
        else:
            self.drops += 1

    def pull(self, port: int) -> Packet | None:
        q = self.q
        return q.popleft() if q else None


@element
class Discard(Element):
    """Discard: drops every packet (counted); in pull context it pulls
    packets as fast as it can."""

    class_name = "Discard"
    stat_keys = ("count",)

    def configure(self, args: tuple[str, ...]) -> None:
        read_args(args, (), ("ACTIVE", "BURST"), mandatory=0)
        self.count = 0

    def push(self, port: int, p: Packet) -> None:
        self.count += 1

    def run_task(self, budget: int = 1 << 30) -> int:
        n = 0
        while n < budget and self.in0() is not None:
            self.count += 1
            n += 1
        return n


@element
class Idle(Element):
    """Idle: never emits a packet; drops what it is given."""

    class_name = "Idle"

    def configure(self, args: tuple[str, ...]) -> None:
        super().configure(args)

    def push(self, port: int, p: Packet) -> None:
        self.drops += 1

    def pull(self, port: int) -> Packet | None:
        return None
