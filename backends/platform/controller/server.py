"""`fsc controller`: the state directory locked, both listening sockets bound
(so every startup problem is reported before anything runs), os-ken's
OpenFlow machinery fed by our listener, the HTTP API in a thread; blocks
until SIGTERM/SIGINT. The only place that wires the pieces."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends.platform.controller.hosts import DOWN_AFTER, UP_AFTER
from backends.platform.controller.relocate import Recompile
from backends.platform.controller.state import StateDir, StateError

#: Where `fsc controller` listens unless told: both on the loopback only. A
#: switch elsewhere needs `--openflow ADDRESS:6653` (the lab passes
#: 127.0.0.1, its controller runs in the switches' namespace).
DEFAULT_LISTEN = "127.0.0.1:8181"
DEFAULT_OPENFLOW = "127.0.0.1:6653"


class StartupError(RuntimeError):
    """The controller cannot start (port in use, state directory locked...)."""


def parse_hostport(text: str, default_host: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = default_host, text
    try:
        p = int(port)
    except ValueError as err:
        raise ValueError(f"`{text}` is not HOST:PORT") from err
    if not 0 <= p < 65536:
        raise ValueError(f"port {p} out of range")
    return (host.strip("[]") or default_host), p


def _bind(addr: tuple[str, int], what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    try:
        return socket.create_server(addr, family=family, backlog=128)
    except OSError as err:
        raise StartupError(f"cannot listen for {what} on {addr[0]}:{addr[1]}: {err.strerror or err}") from err


def run(
    listen: tuple[str, int],
    openflow: tuple[str, int],
    state_dir: Path,
    request_timeout: float = 30.0,
    recompile: Recompile | None = None,
    down_after: float = DOWN_AFTER,
    up_after: float = UP_AFTER,
    setup: Callable[[Any], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT. ``recompile``: how the controller compiles the
    deployed site again for a failover or drain (``fsc controller`` passes one
    built on ``fslang.api.build``; the platform layer may not import it);
    ``setup``: called with the controller before it serves (rebalancing and
    power options of `fsc controller`)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("os_ken.base.app_manager", "os_ken.controller.controller"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        state = StateDir(state_dir)
        state.lock()
        token = state.token()
        deployed = state.deployed()
    except StateError as err:
        raise StartupError(str(err)) from err
    except OSError as err:
        raise StartupError(f"cannot use the state directory {state_dir}: {err.strerror or err}") from err
    http_sock = _bind(listen, "HTTP")
    of_sock = _bind(openflow, "OpenFlow")

    from os_ken import cfg
    from os_ken.base import app_manager

    from backends.platform.controller.httpapi import ApiServer, create_app
    from backends.platform.controller.monitor import Monitor
    from backends.platform.controller.ofapp import FscOpenFlow
    from backends.platform.controller.ofserver import FscOFPHandler, OpenFlowListener, quiet_osken_parser
    from backends.platform.controller.service import Controller

    cfg.CONF(args=[], project="os_ken")
    quiet_osken_parser()
    mgr = app_manager.AppManager.get_instance()
    handler = mgr.instantiate(FscOFPHandler)
    of = mgr.instantiate(FscOpenFlow)
    handler.listener = OpenFlowListener(of_sock)
    controller = Controller(
        state,
        of,
        pause_after=os.environ.get("FSC_CONTROLLER_PAUSE_AFTER") or None,
        recompile=recompile,
        down_after=down_after,
        up_after=up_after,
    )
    if setup is not None:
        setup(controller)
    api = ApiServer(http_sock, create_app(controller, token, request_timeout), request_timeout)
    handler.start()
    of.start()
    api.start()
    stop = threading.Event()
    Monitor(controller).start(stop)
    sys.stderr.write(
        f"fsc controller: OpenFlow on {openflow[0]}:{of_sock.getsockname()[1]}, "
        f"HTTP API on http://{listen[0]}:{api.port}\n"
        f"  state: {state.root}  (deployed: "
        f"{f'generation {deployed.generation} of site {deployed.site}' if deployed else 'nothing'})\n"
        f"  token: {state.token_path}  (clients: --token-file {state.token_path} or FSC_TOKEN_FILE)\n"
    )
    sys.stderr.flush()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    # os-ken's threads cannot be joined; the state on disk is always
    # consistent (atomic writes), an apply cut off here is handled like a
    # crash on the next start
    sys.stderr.write("fsc controller: stopped\n")
    sys.stderr.flush()
    os._exit(0)
