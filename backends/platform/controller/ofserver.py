"""The OpenFlow listener: accepts switch connections on the address it is
given and runs each with os-ken's protocol machinery (``Datapath``: parsing,
the hello/features handshake, events to :mod:`ofapp`).

Why not os-ken's own listener (``OpenFlowController``): with its "native"
hub (plain threads, the only one that mixes with the rest of this process)
``hub.kill`` does nothing, so when a connection's receive loop ends,
``Datapath.serve`` joins a send thread that waits on an empty queue for
good: every connection that ends before the switch is handed a message
leaks two threads (a bare connect, random bytes, a half hello), and its
``DEAD_DISPATCHER`` event never comes. Here each connection's send thread is
woken when its receive loop ends, so both threads end with the connection.
Besides: a connection that has not finished the handshake within
``HANDSHAKE_TIMEOUT`` is closed, at most ``MAX_CONNECTIONS`` are served at
once, TCP keepalive finds peers that vanished, and junk is logged as one
rate-limited line instead of a traceback per connection.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import controller as osken_controller
from os_ken.controller import ofp_handler
from os_ken.controller.handler import CONFIG_DISPATCHER, HANDSHAKE_DISPATCHER
from os_ken.lib import hub

LOG = logging.getLogger("fsc.controller.openflow")

#: Seconds a new connection has to finish the OpenFlow handshake.
HANDSHAKE_TIMEOUT = 10.0
#: Connections served at once; more are closed at once (switches retry).
MAX_CONNECTIONS = 256
#: TCP keepalive: first probe after this many idle seconds, then every
#: KEEPALIVE_INTERVAL, the peer is gone after KEEPALIVE_COUNT unanswered.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 10, 5, 3
#: At most one "bad connections" log line per this many seconds.
JUNK_LOG_EVERY = 10.0


class _Datapath(osken_controller.Datapath):
    """os-ken's Datapath whose send thread ends with the connection."""

    def serve(self) -> None:
        send_thread = hub.spawn(self._send_loop)
        self.send_msg(self.ofproto_parser.OFPHello(self))
        try:
            self._recv_loop()  # closes the socket when it returns (os-ken's @_deactivate)
        finally:
            self._wake_sender()
            send_thread.join(osken_controller.CONF.socket_timeout + 1.0)
            self.is_active = False

    def _wake_sender(self) -> None:
        """Queue an empty "close" message: the send loop takes it, fails on (or
        leaves) the closed socket and ends. With a full queue the sender is
        busy and fails on the closed socket by itself."""
        q = self.send_q
        if q is not None and self._send_q_sem.acquire(blocking=False):
            q.put_nowait((b"", True))


class OpenFlowListener:
    """Accepts on a bound socket; one thread per connection (two while the
    switch is connected: receive and send)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self._live: dict[_Datapath, float] = {}  # connection -> when it was accepted
        self._junk = 0
        self._junk_last = ""
        self._junk_logged = 0.0
        self.stopped = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return host, port

    def live(self) -> int:
        with self._lock:
            return len(self._live)

    def serve_forever(self) -> None:
        self.sock.settimeout(1.0)  # wakes up to close handshakes that take too long
        while not self.stopped.is_set():
            try:
                conn, addr = self.sock.accept()
            except TimeoutError:
                self._reap()
                continue
            except OSError as err:
                if self.stopped.is_set():
                    return
                LOG.warning("OpenFlow accept failed: %s", err)
                time.sleep(0.1)
                continue
            self._reap()
            if self.live() >= MAX_CONNECTIONS:
                conn.close()
                self._note_junk(addr, f"more than {MAX_CONNECTIONS} connections at once")
                continue
            threading.Thread(target=self._serve, args=(conn, addr), daemon=True, name="openflow-conn").start()

    def _serve(self, conn: socket.socket, addr: Any) -> None:
        conn.settimeout(None)
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT)
            dp = _Datapath(conn, addr)
        except OSError as err:  # the peer is already gone
            conn.close()
            self._note_junk(addr, str(err))
            return
        with self._lock:
            self._live[dp] = time.monotonic()
        why = "closed before the OpenFlow handshake finished"
        try:
            dp.serve()
        except Exception as err:  # junk on the wire: os-ken's parser raises
            why = f"{type(err).__name__}: {err}"
            if dp.id is not None:
                LOG.warning("switch %#x: connection closed: %s", dp.id, why)
        finally:
            with self._lock:
                self._live.pop(dp, None)
            dp.close()  # DEAD_DISPATCHER: ofapp forgets the switch
            conn.close()
        if dp.id is None:
            self._note_junk(addr, why)

    def _reap(self) -> None:
        """Close connections still in the handshake after HANDSHAKE_TIMEOUT."""
        now = time.monotonic()
        with self._lock:
            late = [
                dp
                for dp, t in self._live.items()
                if dp.state in (HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER) and now - t > HANDSHAKE_TIMEOUT
            ]
        for dp in late:
            try:
                dp.socket.shutdown(socket.SHUT_RDWR)  # the receive loop reads EOF and ends
            except OSError:
                pass

    def _note_junk(self, addr: Any, why: str) -> None:
        with self._lock:
            self._junk += 1
            self._junk_last = f"{addr[0]}:{addr[1]}: {why}" if isinstance(addr, tuple) else why
            now = time.monotonic()
            if now - self._junk_logged < JUNK_LOG_EVERY:
                return
            n, last, self._junk, self._junk_logged = self._junk, self._junk_last, 0, now
        LOG.warning("closed %d OpenFlow connection(s) that were not a switch (last: %s)", n, last)

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


class FscOFPHandler(ofp_handler.OFPHandler):
    """os-ken's handshake handler (hello, features, echo) fed by
    :class:`OpenFlowListener` instead of os-ken's own listener."""

    listener: OpenFlowListener | None = None

    def start(self) -> Any:
        app_manager.OSKenApp.start(self)  # the event loop; OFPHandler.start would run os-ken's listener
        assert self.listener is not None
        thread = threading.Thread(target=self.listener.serve_forever, daemon=True, name="openflow-listen")
        thread.start()
        return thread


class _OneLine(logging.Filter):
    """os-ken logs a traceback and a hex dump for every malformed message; one line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        record.msg, record.args = "a switch sent a malformed OpenFlow message; it was skipped", ()
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_osken_parser() -> None:
    logging.getLogger("os_ken.ofproto.ofproto_parser").addFilter(_OneLine())
