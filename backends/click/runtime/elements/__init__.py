"""The element classes the fsc Click runtime implements, grouped by area;
importing this package registers them all in ``base.REGISTRY``."""

from backends.click.runtime.elements import (  # noqa: F401 - imported to register the classes
    classification,
    counters,
    devices,
    ethernet,
    ip,
    ipsec,
    rate,
    rewriting,
    standard,
)
from backends.click.runtime.elements.base import REGISTRY, Element, SimpleElement

__all__ = ["REGISTRY", "Element", "SimpleElement"]
