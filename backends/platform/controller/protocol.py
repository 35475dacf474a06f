"""Wire format between the controller, the CLI client and the host agents.

The single source of the JSON shapes of the HTTP API in docs/platform.md; the
agent (backends/agent) and the controller both import these models, so a change
here is a protocol change (bump ``PROTOCOL_VERSION``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PROTOCOL_VERSION = 1

InstanceKind = Literal["click", "process", "vm"]
InstanceState = Literal["starting", "ready", "failed", "stopped"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class InstanceSpec(_Model):
    """One instance a host should run, as the controller wants it.

    ``id``: ``click.gN`` for the host's Click configuration of generation N
    (one per generation, both may run during an update); the instance name
    (``fw``, ``ids#1``) for ``process`` and ``vm`` instances, which are
    tag-transparent and survive an update when their files are unchanged.
    ``files``: compiled file path (as in the output directory, e.g.
    ``click/mh1.click``, ``process/bl.json``, ``vm/ids#1.xml``) -> content.
    ``digest``: :func:`spec_digest` of ``files``; an agent runs an instance
    whose digest differs from the wanted one as a different instance (stop the
    old, start the new).
    """

    id: str
    kind: InstanceKind
    generation: int = Field(ge=0, le=1)
    files: dict[str, str]
    site: str
    digest: str
    source: str = ""  # the site's FSL text (the lab's reference behaviours read it); not in the digest


class InstanceReport(_Model):
    """One instance as the agent sees it (in a heartbeat)."""

    id: str
    digest: str = ""
    state: InstanceState
    packets: int = 0
    restarts: int = 0
    message: str = ""


class HostLoad(_Model):
    """The host's load: 1-minute load average, cores, memory in bytes."""

    load1: float = 0.0
    cores: int = 0
    memory_total: int = 0
    memory_available: int = 0


class Heartbeat(_Model):
    """Body of ``POST /v1/agents/HOST/heartbeat``."""

    load: HostLoad = Field(default_factory=HostLoad)
    instances: list[InstanceReport] = Field(default_factory=list)
    agent_version: int = PROTOCOL_VERSION


class HeartbeatAnswer(_Model):
    """Answer to a heartbeat: the full desired instance set of this host.

    ``interval``: seconds until the next heartbeat is expected; a host that
    misses three is considered dead.
    """

    instances: list[InstanceSpec] = Field(default_factory=list)
    interval: float = 1.0
    generation: int | None = None


class ApplyRequest(_Model):
    """Body of ``POST /v1/plan`` and ``POST /v1/apply``: a compiled site.

    ``files``: the output directory of ``fsc compile`` (path -> content),
    compiled with ``generation`` = 1 - the deployed one (0 when nothing is
    deployed). ``source``: the site file's text (kept for the record).
    """

    site: str
    files: dict[str, str]
    source: str = ""
    drain_seconds: float = Field(default=1.0, ge=0)
    ready_timeout: float = Field(default=60.0, gt=0)


def spec_digest(files: dict[str, str]) -> str:
    """sha256 over the sorted (path, content) pairs: equal files, equal digest."""
    blob = json.dumps(sorted(files.items()), separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()
