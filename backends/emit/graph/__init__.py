"""`fsc graph`: a Graphviz picture of a compiled site (switches, hosts with
their placed instances, edges, boxes, wiring and every policy's path)."""

from backends.emit.graph.render import DotFailed, DotMissing, render_dot, run_dot

__all__ = ["DotFailed", "DotMissing", "render_dot", "run_dot"]
