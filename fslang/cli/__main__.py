"""`python -m fslang.cli`: the `fsc` command."""

from fslang.cli import run

run()
