"""`fsc agent` entry point: arguments checked, running instances adopted, the loop
run until a signal (SIGTERM/SIGINT stop the instances too; an agent that dies
without one leaves them running for the next agent to adopt)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from backends.platform.agent.agent import Agent
from backends.platform.agent.client import ControllerClient, read_token
from backends.platform.agent.runners import Context


def run_agent(
    host: str,
    controller: str,
    token_file: Path | None = None,
    lab: bool = False,
    state_dir: Path | None = None,
    netns_prefix: str = "fsvm-",
    stop: threading.Event | None = None,
    libvirt_uri: str = "qemu:///system",
) -> int:
    """Run the agent until SIGTERM/SIGINT (or ``stop``), then stop its instances."""
    if not controller.startswith(("http://", "https://")):
        raise SystemExit(
            f"fsc agent: --controller {controller!r} is not a URL; "
            "write it as http://HOST:PORT (e.g. http://127.0.0.1:8181)"
        )
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format=f"%(asctime)s agent {host}: %(message)s", datefmt="%H:%M:%S"
    )
    ctx = Context(
        host=host,
        state_dir=state_dir or Path(f"/var/lib/fsc-agent/{host}"),
        lab=lab,
        netns_prefix=netns_prefix,
        libvirt_uri=libvirt_uri,
    )
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    agent = Agent(ctx, ControllerClient(controller, host, read_token(token_file)))
    agent.adopt()
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    logging.getLogger("fsc.agent").info(
        "controller %s, state %s%s",
        controller,
        ctx.state_dir,
        ", lab mode" if lab else f", vm instances on {libvirt_uri}",
    )
    try:
        agent.run(stop)
    finally:
        agent.shutdown()
    return 0
