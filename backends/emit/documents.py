"""``plan.json``: the document that describes a whole compiled site (written by
``fsc compile``, read by the controller). One pydantic model, used by the
writer (:func:`backends.emit.output.render`) and every reader, so the shape
is declared once. Readers ignore fields they do not know (a newer compiler)."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

#: Bumped when a reader of an older version would misread the file.
FORMAT_VERSION = 1

#: What a switch's ``json_cannot_carry`` can say (``backends.emit.output.json_cannot_carry``)
MASKED_PORTS_NOTE = (
    "masked transport ports (Open vSwitch's tcp_dst=VALUE/MASK): os-ken's and Ryu's ofctl parse no mask there"
)
CONNTRACK_NOTE = (
    "connection tracking (Nicira ct action, ct_state/ct_mark matches; a CT action in os-ken's NXActionCT "
    "terms that ofctl_rest does not parse): fsc's controller loads it"
)


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class GenerationBits(_Doc):
    """Where the generation bit sits in each field the platform tags."""

    vlan_vid: int
    metadata: int
    cookie: int


class UpdateInfo(_Doc):
    """What a consistent update needs: the tables flipped in one bundle."""

    ingress_tables: list[int]
    generation_bits: GenerationBits


class SteeringInfo(_Doc):
    tag: str  # what carries the steering tag on the wire
    tags: dict[str, str]  # VLAN id (decimal) -> what it means
    labels: dict[str, str] = {}  # MPLS label (decimal) -> what it means (sites beyond 2,046 tags)


class SwitchInfo(_Doc):
    dpid: int
    rules: int
    tcam: int | None  # None: no budget declared
    profile: str = "openflow1.3"  # or "ovs": Open vSwitch extensions allowed (`switch ... ovs`)
    json_cannot_carry: list[str] = []  # extensions the .ofctl uses that a standard ofctl_rest parser refuses


class PolicyInfo(_Doc):
    name: str
    cookie: str  # "VALUE/MASK" in hex: the cookies of the policy's rules
    symmetric: bool


class ReplicaInfo(_Doc):
    """A replicated module: its instances' weights and shares of new flows,
    and the range the platform may scale it within (`replicas A..B`)."""

    weights: dict[str, int]  # instance -> weight
    shares: dict[str, float]  # instance -> share of new flows (its flow-hash buckets / 256)
    range: list[int] | None = None  # [A, B]: placed A now, B checked to fit; None: a fixed count


class PlanDocument(_Doc):
    """The content of ``plan.json``."""

    version: int = FORMAT_VERSION
    site: str
    files: dict[str, str]  # every other output file -> sha256 of its text
    tables: dict[str, str]  # table id (decimal) -> name
    generation: int = Field(ge=0, le=1)
    update: UpdateInfo
    steering: SteeringInfo
    switches: dict[str, SwitchInfo]
    policies: list[PolicyInfo]
    replicas: dict[str, ReplicaInfo] = {}  # module -> its replicas (modules with more than one, or a range)

    def to_text(self) -> str:
        """The file's text: sorted keys, indent 2, a final newline (deterministic)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_text(cls, text: str) -> PlanDocument:
        """Parse and validate; a ``pydantic.ValidationError`` (a ValueError) says what is wrong."""
        return cls.model_validate_json(text)
