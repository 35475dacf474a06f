"""Exact header spaces and the regions built from them."""
