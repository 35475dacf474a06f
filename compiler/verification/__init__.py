"""Verification: the reference interpreter and the simulators that prove the output."""
