"""``api``: :mod:`fslang.api`, imported on first use.

Why: importing the whole pipeline (compiler, emitters) takes most of a second;
`fsc apply` of an unchanged site, `fsc status` and the platform commands need
none of it, and must answer in well under a second.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fslang import api
else:

    class _LazyModule:
        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attr: str) -> Any:
            return getattr(importlib.import_module(self._name), attr)

    api = _LazyModule("fslang.api")

__all__ = ["api"]
