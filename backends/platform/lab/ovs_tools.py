"""Finding the Open vSwitch and iproute2 binaries, the error OVS commands raise, and process checks by pid.

Apart from :mod:`backends.platform.lab.ovs` so that callers can check for OVS (``ovs_available``) and tests can
name the error without the instance machinery.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

OVS_BINARIES = ("ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-vswitchd", "ovs-ofctl", "ovs-appctl")
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin")
_SYSTEM_DEPS_HINT = "run `sudo bash scripts/system-deps.sh` (Debian packages openvswitch-switch, iproute2)"


class OvsError(RuntimeError):
    """An OVS or iproute2 command failed, or the instance is unusable.

    ``cmd`` (list), ``returncode``, ``stdout`` and ``stderr`` are set when a
    command failed; the message always names the command and its stderr.
    """

    def __init__(
        self,
        message: str,
        *,
        cmd: Sequence[str] | None = None,
        returncode: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        super().__init__(message)
        self.cmd = list(cmd) if cmd is not None else None
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def _search_path() -> str:
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(dirs + [d for d in _SBIN_DIRS if d not in dirs])


def _which(name: str) -> str | None:
    return shutil.which(name, path=_search_path())


def ovs_available() -> str | None:
    """None when the OVS and iproute2 binaries are installed, else why not."""
    missing = [b for b in (*OVS_BINARIES, "ip") if _which(b) is None]
    if missing:
        return f"missing binaries: {', '.join(missing)}; {_SYSTEM_DEPS_HINT}"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    # state is the field after the ")" that closes the command name
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _pid_is(pid: int, binary: str) -> bool:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except (OSError, IndexError):
        return False
    # /proc/PID/comm holds at most 15 characters
    return comm == binary[:15] or os.path.basename(argv0) == binary
