"""The fsc userlevel Click runtime: runs the Click configurations fsc emits
(``click/HOST.click``) without a ``click`` binary.

It executes exactly the element classes the Click backend emits (see
``elements``), with the semantics of Click's documentation, on packets read
from and written to network devices through AF_PACKET sockets
(``python -m backends.click.runtime CONFIG.click``), or through the Python
API used by the tests::

    from backends.click.runtime import load
    router = load(text)
    out = router.push("eth0", frame)   # {device: [frames sent]}
    router.stats()                     # counters per device, compound element, element

An element the runtime does not implement is an error when the
configuration is loaded (``ClickLoadError``, with the element's name, class
and line).
"""

from backends.click.runtime.router import ClickLoadError, MemoryTransport, Router, load, load_file

__all__ = ["ClickLoadError", "MemoryTransport", "Router", "load", "load_file"]
