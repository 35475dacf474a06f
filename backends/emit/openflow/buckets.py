"""A group file's bucket spellings, each made once per bucket object.

A site of chains of their own has tens of thousands of fast-failover groups
whose buckets lowering builds once per distinct bucket
(``compiler.lowering.failover``): 52,000 buckets, 19,000 objects.  Looking a
bucket up by value would hash its actions (frozen dataclasses: Python
``__hash__`` per action) at about the cost of spelling it; by identity the
lookup is a C hash of an int, and each object is held, so its id is not
reused while the cache lives.
"""

from __future__ import annotations

from collections.abc import Callable

from compiler.flowir import Bucket


class BucketTexts:
    """``spell(group type, bucket)``, once per (bucket object, group type)."""

    def __init__(self, spell: Callable[[str, Bucket], str]) -> None:
        self._spell = spell
        self._seen: dict[tuple[int, str], tuple[Bucket, str]] = {}

    def __call__(self, gtype: str, bucket: Bucket) -> str:
        key = (id(bucket), gtype)
        hit = self._seen.get(key)
        if hit is None:
            hit = self._seen[key] = (bucket, self._spell(gtype, bucket))
        return hit[1]
