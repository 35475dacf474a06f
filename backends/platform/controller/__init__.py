"""The platform controller: os-ken switch programming, deployed state, HTTP API
for `fsc plan/apply/status` and the host agents (docs/platform.md)."""
