"""The per-host power hook (`fsc controller --power-hook TEMPLATE`): a shell
command the controller runs when a host is freed (a drain asked to power it
off, e.g. by `fsc apply --consolidate`) or needed again (`fsc undrain` of a
host it powered off). ``{host}`` and ``{action}`` (``on`` or ``off``) in the
template are replaced, each quoted for the shell with :func:`shlex.quote`, so
a host name can never run a command of its own::

    --power-hook 'ipmitool -I lanplus -H {host}-bmc -U admin -f /etc/ipmi.pw chassis power {action}'

The controller remembers which hosts it powered off (``power.json`` in its
state directory), so ``undrain`` powers on only those.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

LOG = logging.getLogger("fsc.controller.power")

#: Seconds a hook command may take.
TIMEOUT = 120.0

#: Runs one shell command line; returns (exit status, output). Tests inject one.
Runner = Callable[[str], tuple[int, str]]


class PowerHookError(ValueError):
    """The template is not usable (unknown placeholder, no ``{host}``)."""


def check_template(template: str) -> str:
    """The template itself, or PowerHookError saying what is wrong with it."""
    try:
        template.format(host="h", action="on")
    except (KeyError, IndexError, ValueError) as err:
        raise PowerHookError(
            f"--power-hook: `{template}` has an unknown placeholder or a stray brace ({err}); "
            "use {host} and {action}, double other braces"
        ) from None
    if "{host}" not in template:
        raise PowerHookError("--power-hook: the template must name the host with {host}")
    return template


def command_line(template: str, host: str, action: str) -> str:
    """The shell command line for one call, every value quoted."""
    return template.format(host=shlex.quote(host), action=shlex.quote(action))


def _shell(line: str) -> tuple[int, str]:
    try:
        cp = subprocess.run(
            ["/bin/sh", "-c", line], capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {TIMEOUT:.0f}s"
    return cp.returncode, (cp.stdout + cp.stderr).strip()


class PowerHook:
    def __init__(self, template: str, state_file: Path | None = None, run: Runner = _shell) -> None:
        self.template = check_template(template)
        self.state_file = state_file
        self.run = run
        self.calls: list[tuple[str, str, int]] = []  # (host, action, exit status), for status and tests
        self._lock = threading.Lock()
        self._off: set[str] = set()
        if state_file is not None and state_file.exists():
            try:
                self._off = set(json.loads(state_file.read_text()).get("off", []))
            except (OSError, ValueError, AttributeError):
                LOG.warning("cannot read %s; assuming every host is powered on", state_file)

    def powered_off(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._off)

    def _save(self) -> None:
        if self.state_file is None:
            return
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"off": sorted(self._off)}) + "\n")
        tmp.replace(self.state_file)

    def call(self, host: str, action: str) -> tuple[bool, str]:
        """Run the hook for one host; (ok, what happened)."""
        assert action in ("on", "off")
        line = command_line(self.template, host, action)
        code, out = self.run(line)
        with self._lock:
            self.calls.append((host, action, code))
            if code == 0:
                (self._off.add if action == "off" else self._off.discard)(host)
                self._save()
        if code != 0:
            msg = f"power hook for {host} ({action}) failed with status {code}: {out[-300:]}"
            LOG.warning("%s", msg)
            return False, msg
        return True, f"powered {action} {host} (`{line}`)"

    def freed(self, host: str) -> tuple[bool, str]:
        return self.call(host, "off")

    def needed(self, host: str) -> tuple[bool, str] | None:
        """Power on a host this controller powered off; None when it did not."""
        if host not in self.powered_off():
            return None
        return self.call(host, "on")
