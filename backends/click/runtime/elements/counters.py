"""Counter: packet and byte counts, and an averaged packet rate."""

from __future__ import annotations

from typing import Any

from backends.click.runtime.elements.base import SimpleElement, element
from backends.click.runtime.packet import Packet


@element
class Counter(SimpleElement):
    """Counter: counts packets and bytes that pass (handlers ``count``,
    ``byte_count``, ``rate`` in packets per second over the last seconds)."""

    class_name = "Counter"
    RATE_WINDOW = 1.0  # seconds per rate sample

    def configure(self, args: tuple[str, ...]) -> None:
        super().configure(args)
        self.count = 0
        self.byte_count = 0
        self._mark_t = None
        self._mark_n = 0
        self._rate = 0.0

    def push(self, port: int, p: Packet) -> None:
        self.count += 1
        self.byte_count += len(p.buf) - p.s
        self.out0(p)

    def action(self, p: Packet) -> Packet:
        self.count += 1
        self.byte_count += len(p.buf) - p.s
        return p

    @property
    def rate(self) -> float:
        now = self.router.now()
        if self._mark_t is None:
            self._mark_t, self._mark_n = now, self.count
            return 0.0
        dt = now - self._mark_t
        if dt >= self.RATE_WINDOW:
            self._rate = (self.count - self._mark_n) / dt
            self._mark_t, self._mark_n = now, self.count
        return self._rate

    def reset(self) -> None:
        self.count = self.byte_count = 0
        self._mark_t = None

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update(count=self.count, byte_count=self.byte_count, rate=round(self.rate, 3))
        return out
