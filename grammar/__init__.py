"""The FSL grammar, shipped as package data so an installed `fsc` finds it."""

from importlib.resources import files

GRAMMAR_FILE = "fsl.lark"


def grammar_text() -> str:
    """Return the text of `fsl.lark`."""
    return files(__name__).joinpath(GRAMMAR_FILE).read_text(encoding="utf-8")
