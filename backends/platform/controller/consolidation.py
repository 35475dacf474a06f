"""Consolidation's moves (`fsc apply --consolidate`): each freed host is
drained with ``targets``, where the packed placement puts its instances. The
drain's re-placement then starts from the deployed placement with those
instances already at their targets (:func:`toward`): every instance that fits
where that says stays there, so the moved ones land where the packed
placement wants them (a target that has no room: the drain's usual choice)."""

from __future__ import annotations

from collections.abc import Mapping

from compiler.placement.document import PlacementDocument


def toward(placement: str | None, targets: Mapping[str, str]) -> str | None:
    """The deployed ``placement.json`` with ``targets`` (instance -> host) applied
    (instances or hosts it does not know are left alone)."""
    if placement is None or not targets:
        return placement
    try:
        doc = PlacementDocument.from_text(placement)
    except ValueError:
        return placement
    instances = dict(doc.instances)
    for inst, host in targets.items():
        if inst in instances and host in doc.hosts:
            instances[inst] = instances[inst].model_copy(update={"host": host})
    return doc.model_copy(update={"instances": instances}).to_text()
