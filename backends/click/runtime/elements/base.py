"""Element base classes and the registry of implemented element classes.

An element gets its ports from the router (as many as the configuration
uses, within the class's range), a ``configure`` call with its split
configuration arguments, then ``initialize`` once every element exists (to
resolve references such as an IPRewriter's mapper).  The router then wires
the connections:

* a push connection sets ``src.out[port]`` to a callable taking a packet
  (the downstream element's ``push`` bound to its input port);
* a pull connection sets ``dst.inp[port]`` to a callable returning a packet
  or None (the upstream element's ``pull`` bound to its output port).

``SimpleElement`` is Click's ``simple_action``: one packet in, the same (or
another) packet or nothing out, usable in push and in pull context.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from backends.click.runtime.packet import Packet

if TYPE_CHECKING:  # pragma: no cover
    from backends.click.runtime.router import Router

REGISTRY: dict[str, type[Element]] = {}


def element(cls: type[Element]) -> type[Element]:
    """Class decorator: register an element class under its Click name."""
    REGISTRY[cls.class_name] = cls
    return cls


def _discard(p: Packet) -> None:
    return None


class Element:
    class_name = ""
    #: statistics keys this element reports (besides drops)
    stat_keys: tuple[str, ...] = ()

    def __init__(self, router: Router, name: str, line: int, ninputs: int, noutputs: int) -> None:
        self.router = router
        self.name = name
        self.line = line
        self.ninputs = ninputs
        self.noutputs = noutputs
        self.out: list[Callable[[Packet], Any] | None] = [None] * noutputs
        self.inp: list[Callable[[], Packet | None] | None] = [None] * ninputs
        self.drops = 0

    def configure(self, args: tuple[str, ...]) -> None:
        if args:
            from backends.click.runtime.args import ConfigError

            raise ConfigError(f"{self.class_name} takes no configuration arguments")

    def initialize(self) -> None:
        pass

    def connected(self) -> None:
        """Called once wiring is done: cache the hot callables."""
        self.out0 = self.out[0] if self.noutputs and self.out[0] is not None else self.drop
        self.in0 = self.inp[0] if self.ninputs and self.inp[0] is not None else (lambda: None)

    # -- packet paths
    def push(self, port: int, p: Packet) -> None:  # pragma: no cover - wiring prevents it
        raise NotImplementedError(f"{self.class_name} has no push input")

    def pull(self, port: int) -> Packet | None:  # pragma: no cover
        raise NotImplementedError(f"{self.class_name} has no pull output")

    def drop(self, p: Packet) -> None:
        self.drops += 1

    def checked_push(self, port: int, p: Packet) -> None:
        """Click's ``checked_output_push``: to ``port`` if it exists, else dropped."""
        if 0 <= port < self.noutputs and self.out[port] is not None:
            self.out[port](p)
        else:
            self.drops += 1

    # -- scheduling and statistics
    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"class": self.class_name}
        for k in self.stat_keys:
            out[k] = getattr(self, k)
        if self.drops:
            out["drops"] = self.drops
        return out


class SimpleElement(Element):
    """``action(p)`` returns the packet to emit on output 0, or None."""

    def action(self, p: Packet) -> Packet | None:  # pragma: no cover
        raise NotImplementedError

    def push(self, port: int, p: Packet) -> None:
        q = self.action(p)
        if q is not None:
            self.out0(q)

    def pull(self, port: int) -> Packet | None:
        p = self.in0()
        if p is None:
            return None
        return self.action(p)


def bind_push(dst: Element, port: int) -> Callable[[Packet], Any]:
    return partial(dst.push, port)


def bind_pull(src: Element, port: int) -> Callable[[], Packet | None]:
    return partial(src.pull, port)
