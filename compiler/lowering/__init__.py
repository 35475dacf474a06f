"""Lowering: the steering plan as OpenFlow tables, checked against their contracts."""
