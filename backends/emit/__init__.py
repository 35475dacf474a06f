"""Emitters: pure generators of every artifact (OpenFlow, Click, VM, process, graph)."""
