"""The thin libvirt adapter of the `vm` runner: one connection, domains by UUID.

Everything here is a libvirt-python call; the runner (:mod:`.vm`) decides
when.  Why one kept connection: the runner starts domains from worker threads
and polls them from the agent's loop, and a libvirt connection is thread-safe;
reopening per call would cost a round trip to libvirtd each time and, with
libvirt's ``test:///`` driver (the tests), lose every domain (that driver
keeps its domains in the connection: ``test:///default`` while any
connection to it is open in the process, a ``test:///PATH/node.xml`` only in
the connection that read the file).  A connection that libvirtd dropped
(a daemon restart) is opened again on the next call.

Errors come out as :class:`VirtError` with libvirt's own message and a hint
at what to do, never as a ``libvirt.libvirtError`` traceback.
"""

from __future__ import annotations

import os
import threading
from typing import Any


class VirtError(RuntimeError):
    """A libvirt call failed; the message is libvirt's plus what to do."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


_LOCK = threading.Lock()
_QUIET = False


def module() -> Any:
    """The ``libvirt`` module, its default error printer silenced (it would
    write every error to stderr as well as raise it); VirtError when absent."""
    global _QUIET
    try:
        import libvirt  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as err:
        raise VirtError(
            "libvirt-python is not installed (it is in fsc's `platform` extra; building it needs the Debian "
            "packages libvirt-dev, pkg-config and gcc: `make system-deps`)"
        ) from err
    with _LOCK:
        if not _QUIET:
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            _QUIET = True
    return libvirt


def message(err: Any) -> str:
    """libvirt's message on one line: an XML error's first line names the line
    and what is wrong (the excerpt with a caret under it that follows is dropped)."""
    lines = [line.strip() for line in (err.get_error_message() or str(err)).splitlines() if line.strip()]
    return lines[0] if lines else "unknown libvirt error"


def no_domain(err: VirtError) -> bool:
    """The domain does not exist (any more)."""
    return err.code == module().VIR_ERR_NO_DOMAIN


class Hypervisor:
    """A kept connection to one libvirt URI."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._conn: Any | None = None
        self._lock = threading.Lock()

    def conn(self) -> Any:
        lv = module()
        with self._lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except lv.libvirtError:
                    pass
                self._conn = None
            try:
                self._conn = lv.open(self.uri)
            except lv.libvirtError as err:
                hint = ""
                if self.uri.startswith("qemu") and not os.path.exists("/dev/kvm"):
                    hint = "; /dev/kvm is missing (no hardware virtualisation here)"
                raise VirtError(
                    f"cannot connect to libvirt at {self.uri}: {message(err)}{hint}; "
                    "start libvirtd (Debian libvirt-daemon-system) or pass another --libvirt-uri, "
                    "or run the agent with --lab",
                    err.get_error_code(),
                ) from None
            return self._conn

    def call(self, what: str, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` with a libvirt error turned into VirtError(``what: message``)."""
        lv = module()
        try:
            return fn(*args)
        except lv.libvirtError as err:
            raise VirtError(f"{what}: {message(err)}", err.get_error_code()) from None

    def define(self, xml: str) -> Any:
        """The persistent domain of ``xml`` (defined anew, or its definition updated)."""
        return self.call("libvirt refused the domain XML", self.conn().defineXML, xml)

    def lookup(self, uuid: str) -> Any:
        return self.call(f"no domain {uuid}", self.conn().lookupByUUIDString, uuid)
