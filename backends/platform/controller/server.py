"""`fsc controller`: os-ken in-process (OpenFlow listener) plus the HTTP API
in a thread; blocks until killed. The only place that wires the pieces."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from backends.platform.controller.state import StateDir


class StartupError(RuntimeError):
    """The controller cannot start (port in use, bad state directory...)."""


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


def run(listen: tuple[str, int], openflow: tuple[str, int], state_dir: Path) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("os_ken.base.app_manager", "os_ken.controller.controller"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        state = StateDir(state_dir)
        token = state.token()
    except OSError as err:
        raise StartupError(f"cannot use the state directory {state_dir}: {err}") from err

    from os_ken import cfg
    from os_ken.base import app_manager

    from backends.platform.controller.httpapi import ApiServer
    from backends.platform.controller.service import Controller

    try:
        api = ApiServer(listen, None, token)  # type: ignore[arg-type]
    except OSError as err:
        raise StartupError(f"cannot listen for HTTP on {listen[0]}:{listen[1]}: {err.strerror or err}") from err
    import socket

    probe = socket.socket(socket.AF_INET6 if ":" in openflow[0] else socket.AF_INET)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(openflow)
    except OSError as err:
        raise StartupError(f"cannot listen for OpenFlow on {openflow[0]}:{openflow[1]}: {err.strerror or err}") from err
    finally:
        probe.close()

    cfg.CONF(args=["--ofp-listen-host", openflow[0], "--ofp-tcp-listen-port", str(openflow[1])], project="os_ken")
    mgr = app_manager.AppManager.get_instance()
    mgr.load_apps(["backends.platform.controller.ofapp"])
    services = mgr.instantiate_apps(**mgr.create_contexts())
    of = mgr.applications["FscOpenFlow"]
    controller = Controller(state, of, pause_after=os.environ.get("FSC_CONTROLLER_PAUSE_AFTER") or None)
    api.controller = controller
    threading.Thread(target=api.serve_forever, daemon=True, name="http").start()
    deployed = state.deployed()
    sys.stderr.write(
        f"fsc controller: OpenFlow on {openflow[0]}:{openflow[1]}, HTTP API on http://{listen[0]}:{api.server_port}\n"
        f"  state: {state.root}  (deployed: "
        f"{'generation {} of site {}'.format(deployed['generation'], deployed['site']) if deployed else 'nothing'})\n"
        f"  token: {state.token_path}  (clients: --token-file {state.token_path} or FSC_TOKEN_FILE)\n"
    )
    sys.stderr.flush()
    del services  # os-ken's threads run until the process ends
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    # os-ken's threads are not daemons and cannot be joined; the state on disk
    # is always consistent (atomic writes), an apply cut off here is handled
    # like a crash on the next start
    sys.stderr.write("fsc controller: stopped\n")
    sys.stderr.flush()
    os._exit(0)
