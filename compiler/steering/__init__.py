"""Steering: pipelines unfolded into dispatches, tags, flow hash and host plumbing."""
