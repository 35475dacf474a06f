"""Placement: module instances onto hosts (heuristic and exact)."""
