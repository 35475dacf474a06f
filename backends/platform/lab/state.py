"""The lab's run directory: a record of everything `up` created, so that `down`
removes exactly that, also after a crash of `up` or of a test.

``/run/fsc-lab/NAME/state.json`` is written atomically *before* each thing is
created (a namespace, a root-namespace link, a process), so the record is never
behind the machine. Processes are recorded by pid and carry the environment
marker ``FSC_LAB=NAME``; `down` only signals a pid whose environment still has
that marker, so a reused pid is never hit.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

#: Where labs live; one directory per lab.
LAB_ROOT = Path(os.environ.get("FSC_LAB_ROOT", "/run/fsc-lab"))
#: Environment variable that marks every process a lab starts.
MARKER = "FSC_LAB"
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_]{0,23}")  # no "-": fsclab-NAME- is a unique prefix


class LabError(RuntimeError):
    """The lab cannot do what was asked; the message says what to do next.
    ``exit_code`` is what `fsc lab` exits with: the class says it, never the
    message (3: the platform refused or failed, or the lab is not there)."""

    exit_code: ClassVar[int] = 3


class LabUsageError(LabError):
    """The request itself is wrong (a malformed lab name, a node or mode that
    does not exist, several labs and no ``--name``, a command not found): exit 2."""

    exit_code: ClassVar[int] = 2


class NoSuchLab(LabError):
    """No lab of that name is up (no record of it on this machine): exit 3."""


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise LabUsageError(
            f"bad lab name {name!r}: 1-24 characters of a-z, 0-9 and _, starting with a letter or digit"
        )
    return name


@dataclass
class LabState:
    """What one lab created and how to reach it."""

    name: str
    site_file: str = ""
    site: str = ""
    phase: str = "building"  # building | up | failed
    ovs_dir: str = ""
    ovs_netns: str = ""
    netns: dict[str, str] = field(default_factory=dict)  # node -> namespace ("ovs" for the switches)
    root_links: list[str] = field(default_factory=list)  # interfaces created in the root namespace
    pids: dict[str, int] = field(default_factory=dict)  # label -> pid (process group leader)
    mode: str = "platform"  # platform (controller + agents + apply) | static (rules + runtimes)
    controller_url: str = ""  # as seen from the root namespace
    controller_url_hosts: dict[str, str] = field(default_factory=dict)  # as seen from each host
    token_file: str = ""
    addresses: dict[str, str] = field(default_factory=dict)  # edge -> source address
    edge_nets: dict[str, list[str]] = field(default_factory=dict)  # edge -> nets it owns ("*": the default)
    bridges: dict[str, str] = field(default_factory=dict)  # switch -> bridge
    notes: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return LAB_ROOT / self.name

    @property
    def path(self) -> Path:
        return self.run_dir / "state.json"

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.run_dir, prefix=".state.")
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, name: str) -> LabState:
        path = LAB_ROOT / check_name(name) / "state.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise NoSuchLab(f"no lab {name!r} is up (no {path}); labs: {', '.join(list_labs()) or 'none'}") from None
        except (OSError, ValueError) as e:
            raise LabError(f"cannot read {path}: {e}; `fsc lab down --name {name}` still cleans up") from None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def list_labs() -> list[str]:
    if not LAB_ROOT.is_dir():
        return []
    return sorted(p.name for p in LAB_ROOT.iterdir() if (p / "state.json").exists())


def netns_name(lab: str, node: str) -> str:
    return f"fsclab-{lab}-{node}"


def root_link_name(lab: str) -> str:
    """The root namespace's end of the lab's management veth (at most 15 characters)."""
    import zlib

    name = f"fl-{lab}"
    return name if len(name) <= 15 else f"fl-{zlib.crc32(lab.encode()) & 0xFFFFFFFF:08x}"
