"""``placement.json``: which host runs each instance, with enough of the site
to be read alone (``--previous``, the controller's instance sets). One
pydantic model, used by :meth:`Placement.to_json` (the writer) and every
reader. Readers ignore fields they do not know (a newer compiler)."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Amount(_Doc):
    """Cores or bytes of memory on a host."""

    used: int = 0
    free: int = 0
    total: int


class PlacedInstance(_Doc):
    host: str
    module: str = ""
    kind: str = ""
    cores: int = 0
    memory: int = 0
    weight: int = 1  # load-balancing weight among the module's instances


class PlacementHost(_Doc):
    cores: Amount
    memory: Amount
    spare: bool = False
    instances: list[str] = []


class PlacementDocument(_Doc):
    """The content of ``placement.json``."""

    instances: dict[str, PlacedInstance]
    hosts: dict[str, PlacementHost]

    def to_text(self) -> str:
        """Deterministic: sorted keys, indent 2, a final newline."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_text(cls, text: str) -> PlacementDocument:
        """Parse and validate; a ``pydantic.ValidationError`` (a ValueError) says what is wrong."""
        return cls.model_validate_json(text)
