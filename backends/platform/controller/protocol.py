"""Wire format between the controller, the CLI client and the host agents.

The single source of the JSON shapes of the HTTP API (docs/platform.md,
docs/openapi.json): the server answers with these models and the client
(:mod:`backends.platform.controller.client`) reads the answers back into
them, so a change here is a protocol change (bump ``PROTOCOL_VERSION``).
Unknown fields are ignored on both sides (an older peer); types are strict
(``false`` is not a number, ``"1"`` not an integer).
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

from backends.emit.documents import ReplicaInfo

PROTOCOL_VERSION = 1

InstanceKind = Literal["click", "process", "vm"]
InstanceState = Literal["starting", "ready", "failed", "stopped"]
#: What ``fsc status`` shows for an instance: the agent's state, or why there is none
#: (``lost``: its host is down).
ShownState = Literal["starting", "ready", "failed", "stopped", "old version", "unknown", "lost"]
#: A host as the controller's monitoring loop sees it (docs/platform.md, "Host states").
HostState = Literal["unknown", "up", "down", "draining", "drained"]
#: Longest wait a request may ask for (seconds).
MAX_WAIT = 3600.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, strict=True)


def one_line(err: ValidationError, limit: int = 3) -> str:
    """A pydantic error as one line: ``where: what`` for the first few problems."""
    parts = []
    for e in err.errors()[:limit]:
        where = ".".join(str(x) for x in e["loc"])
        parts.append(f"{where}: {e['msg']}" if where else e["msg"])
    more = err.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


# ---- agents -------------------------------------------------------------------------------------
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
    bytes: int = Field(default=0, ge=0)  # bytes taken in, where the instance counts them
    cpu_seconds: float = Field(default=0.0, ge=0)  # CPU (user + system) of the instance's processes
    restarts: int = 0
    message: str = ""
    #: a Click configuration's module instances (``fw``, ``ids#2``) -> packets each took in
    modules: dict[str, int] = Field(default_factory=dict)


class HostLoad(_Model):
    """The host's load: 1-minute load average, cores, memory in bytes, and the
    busy share of all cores since the previous heartbeat (0..1)."""

    load1: float = 0.0
    cores: int = 0
    memory_total: int = 0
    memory_available: int = 0
    cpu_busy: float = 0.0


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


# ---- plan and apply -----------------------------------------------------------------------------
class ApplyRequest(_Model):
    """Body of ``POST /v1/plan`` and ``POST /v1/apply``: a compiled site.

    ``files``: the output directory of ``fsc compile`` (path -> content),
    compiled with ``generation`` = 1 - the deployed one (0 when nothing is
    deployed). ``source``: the site file's text (kept for the record).
    ``digest``: what the client compiled (site text, fsc version, options;
    see `fsc apply`): kept with the committed site, so that applying the same
    file again needs no compile (``GET /v1/deployed/digest``).
    """

    site: str
    files: dict[str, str]
    source: str = ""
    digest: str = Field(default="", max_length=128)
    drain_seconds: float = Field(default=1.0, ge=0, le=MAX_WAIT)
    ready_timeout: float = Field(default=60.0, gt=0, le=MAX_WAIT)


class Moved(_Model):
    from_: str = Field(alias="from")
    to: str

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class InstanceChanges(_Model):
    started: list[str] = Field(default_factory=list)
    stopped: list[str] = Field(default_factory=list)
    moved: dict[str, Moved] = Field(default_factory=dict)


class SwitchChanges(_Model):
    """One switch in a plan: rules added and removed, operations per phase."""

    dpid: int
    added: int
    removed: int
    install: int
    flip: int
    cleanup: int
    added_rules: list[str] = Field(default_factory=list)
    removed_rules: list[str] = Field(default_factory=list)


class PlanAnswer(_Model):
    """Answer of ``POST /v1/plan`` (and `fsc plan --format json`)."""

    nothing_to_change: bool
    old_generation: int | None
    new_generation: int
    switches: dict[str, SwitchChanges] = Field(default_factory=dict)
    instances: InstanceChanges = Field(default_factory=InstanceChanges)
    changed_files: list[str] = Field(default_factory=list)
    #: replicated modules of the new site: weights, shares of new flows, scaling range
    replicas: dict[str, ReplicaInfo] = Field(default_factory=dict)


class PhaseCounts(_Model):
    install: int
    flip: int
    cleanup: int


class RuleCounts(_Model):
    added: int
    removed: int


class PlanEvent(_Model):
    phase: Literal["plan"]
    old_generation: int | None
    new_generation: int
    switches: dict[str, PhaseCounts]
    warning: str | None = None


class PrepareEvent(_Model):
    phase: Literal["prepare"]
    repaired: int


class WaitingEvent(_Model):
    phase: Literal["install"]
    waiting: dict[str, list[str]]  # host -> "INSTANCE (why)" not ready yet


class ReadyEvent(_Model):
    phase: Literal["install"]
    instances: Literal["ready"]
    hosts: dict[str, list[str]]


class SwitchEvent(_Model):
    phase: Literal["install", "flip", "cleanup"]
    switch: str
    rules: int


class CommitEvent(_Model):
    phase: Literal["commit"]
    generation: int


class RollbackEvent(_Model):
    phase: Literal["rollback"]
    error: str


class PausedEvent(_Model):
    phase: Literal["paused"]
    after: str


class MovedEvent(_Model):
    """A failover or drain chose where the instances go (an in-place update of the deployed generation)."""

    phase: Literal["moves"]
    host: str
    moved: dict[str, Moved] = Field(default_factory=dict)
    stuck: list[str] = Field(default_factory=list)  # W0702: cannot move, with why


class DrainEvent(_Model):
    """A drain waits for the connections established through the old instances:
    ``old_packets`` went their way so far, ``quiet`` seconds since the last one,
    ``left`` seconds of the grace time; ``new_flows`` connections already went
    to the new instances."""

    phase: Literal["drain"]
    host: str
    old_packets: int
    new_flows: int
    quiet: float
    left: float


class ResultOk(_Model):
    result: Literal["ok"]
    changed: bool
    generation: int | None = None
    message: str | None = None
    switches: dict[str, RuleCounts] | None = None
    instances: InstanceChanges | None = None
    warnings: list[str] | None = None


class ResultFailed(_Model):
    result: Literal["failed"]
    error: str
    rolled_back: bool | None = None
    rollback_problems: list[str] | None = None


def _event_tag(v: Any) -> str | None:
    """Which event an object is: by ``result`` or ``phase``, and for
    ``install`` by its fields."""

    def get(key: str) -> Any:
        return v.get(key) if isinstance(v, dict) else getattr(v, key, None)

    result, phase = get("result"), get("phase")
    if result is not None:
        return f"result:{result}"
    if phase == "install":
        if get("waiting") is not None:
            return "waiting"
        if get("instances") is not None:
            return "ready"
        return "switch"
    if phase in ("flip", "cleanup"):
        return "switch"
    return phase if isinstance(phase, str) else None


ApplyEvent = Annotated[
    Annotated[PlanEvent, Tag("plan")]
    | Annotated[PrepareEvent, Tag("prepare")]
    | Annotated[WaitingEvent, Tag("waiting")]
    | Annotated[ReadyEvent, Tag("ready")]
    | Annotated[SwitchEvent, Tag("switch")]
    | Annotated[CommitEvent, Tag("commit")]
    | Annotated[RollbackEvent, Tag("rollback")]
    | Annotated[PausedEvent, Tag("paused")]
    | Annotated[MovedEvent, Tag("moves")]
    | Annotated[DrainEvent, Tag("drain")]
    | Annotated[ResultOk, Tag("result:ok")]
    | Annotated[ResultFailed, Tag("result:failed")],
    Discriminator(_event_tag),
]
"""One line of the ``POST /v1/apply`` answer (NDJSON): a progress event
(``phase``), and last the result (``result``: ``ok`` or ``failed``)."""

APPLY_EVENT: TypeAdapter[ApplyEvent] = TypeAdapter(ApplyEvent)


def event_line(ev: BaseModel) -> str:
    """An event as its NDJSON line: the fields it was built with, keys sorted."""
    return json.dumps(ev.model_dump(mode="json", exclude_unset=True, by_alias=True), sort_keys=True) + "\n"


# ---- deployed state and status ------------------------------------------------------------------
class DrainRequest(_Model):
    """Body of ``POST /v1/hosts/HOST/drain``: every instance of HOST moves to
    other hosts, make-before-break. Connections established through a moved
    instance stay with the old one until they have been silent for ``idle``
    seconds (ended) or ``grace`` seconds have passed; new ones go to the new
    instance at once."""

    grace: float = Field(default=60.0, ge=0, le=MAX_WAIT)
    idle: float = Field(default=3.0, gt=0, le=MAX_WAIT)
    ready_timeout: float = Field(default=60.0, gt=0, le=MAX_WAIT)
    #: once the drain is over, run the controller's power hook to power HOST
    #: off (`fsc drain --power-off`, `fsc apply --consolidate`)
    power_off: bool = False
    #: instance -> host: where the moved instances should go when they fit
    #: there (`fsc apply --consolidate`: the packed placement); else the drain chooses
    targets: dict[str, str] = Field(default_factory=dict, max_length=100_000)


class HostAnswer(_Model):
    """Answer of ``POST /v1/hosts/HOST/undrain``: the host's state now."""

    host: str
    state: HostState
    message: str


class DigestAnswer(_Model):
    """Answer of ``GET /v1/deployed/digest``: the committed site's generation
    and the digest its apply sent ("" when unknown), without its files.
    ``files_digest``: :func:`files_digest` of the committed files (a client
    that kept a copy of what it applied knows from it that its copy is still
    what is deployed: the platform's own moves change the files, not the
    site); ``unavailable``: as in :class:`DeployedAnswer`."""

    generation: int | None
    site: str | None
    digest: str = ""
    files_digest: str = ""
    unavailable: list[str] = Field(default_factory=list)


def files_digest(files: dict[str, str]) -> str:
    """One digest of a compiled site's files (paths and contents)."""
    h = hashlib.sha256()
    for path in sorted(files):
        p, text = path.encode(), files[path].encode()
        h.update(b"%d:%b%d:" % (len(p), p, len(text)))
        h.update(text)
    return "sha256:" + h.hexdigest()


class DeployedAnswer(_Model):
    """Answer of ``GET /v1/deployed``: the committed site (all null/empty when
    none), and the hosts placement must not use now (down or drained): `fsc
    plan/apply` compile with them left out, as the controller's failover does."""

    generation: int | None
    files: dict[str, str]
    site: str | None
    unavailable: list[str] = Field(default_factory=list)


class SwitchStatus(_Model):
    name: str
    dpid: int
    connected: bool
    rules: int  # in the deployed site
    installed: int | None  # read back from the switch now (None: not connected or no answer)
    tcam: int | None


class InstanceLoad(_Model):
    """An instance's measured load over the controller's short window:
    rates from its agent's cumulative counters; ``cpu`` in cores busy;
    ``history``: ``[seconds ago, packets, bytes, cpu_seconds]``, oldest first."""

    window: float
    packets_per_second: float
    bytes_per_second: float
    cpu: float
    history: list[list[float]] = Field(default_factory=list)


class InstanceStatus(_Model):
    """One instance under its host: a module instance by its own name (``fw``,
    ``ids#2``; Click ones too, with ``in`` the host's Click configuration
    ``click.gN``), or a host's Click configuration itself."""

    id: str
    kind: InstanceKind | None  # None: not wanted (e.g. the old generation while draining)
    wanted: bool
    state: ShownState
    packets: int
    restarts: int
    in_: str | None = Field(default=None, alias="in")  # a Click module instance: its Click configuration
    message: str = ""  # why it is lost, failed or stuck
    bytes: int = 0
    cpu_seconds: float = 0.0
    load: InstanceLoad | None = None  # measured over the last seconds (None: no report yet)

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class HostStatus(_Model):
    name: str
    alive: bool
    last_seen: float | None  # Unix time of the last heartbeat
    load: HostLoad | None
    instances: list[InstanceStatus]
    drained: bool = False  # taken out by `fsc drain` (draining or drained): no placement uses it
    state: HostState = "unknown"
    spare: bool = False


class StatusAnswer(_Model):
    """Answer of ``GET /v1/status``."""

    site: str | None
    generation: int | None
    switches: list[SwitchStatus]
    unknown_switches: list[int]  # connected dpids the deployed site does not have
    hosts: list[HostStatus]
    applying: bool
    #: what the platform is doing by itself (``failover of mh2``, ``drain of mh1``), or None
    operation: str | None = None
    #: instances that could not be re-placed, with why (W0702 messages)
    unplaced: list[str] = Field(default_factory=list)
    #: the last failover or drain: what happened, when (newest last, at most 10)
    events: list[str] = Field(default_factory=list)
    #: replicated modules of the deployed site: weights, shares of new flows, scaling range
    replicas: dict[str, ReplicaInfo] = Field(default_factory=dict)


class ErrorAnswer(_Model):
    """Every answer that is not a success: what went wrong and what to do."""

    error: str


def spec_digest(files: dict[str, str]) -> str:
    """sha256 over the sorted (path, content) pairs: equal files, equal digest."""
    blob = json.dumps(sorted(files.items()), separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()
