"""The Lark LALR parser built from the FSL grammar, and the words that grammar reserves.

Built once per process (cached); the builder needs the reserved words and the parse needs the parser.
"""

from __future__ import annotations

from functools import lru_cache

from lark import Lark

from grammar import grammar_text


@lru_cache(maxsize=1)
def lark_parser() -> Lark:
    return Lark(grammar_text(), parser="lalr", start=["file", "statement"], maybe_placeholders=True, cache=True)


@lru_cache(maxsize=1)
def reserved_keywords() -> frozenset[str]:
    """Every word the grammar spells literally: FSL reserves them all."""
    return frozenset(
        t.pattern.value for t in lark_parser().terminals if t.pattern.type == "str" and t.pattern.value.isidentifier()
    )
