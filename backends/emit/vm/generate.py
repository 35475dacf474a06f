"""`vm/INSTANCE.xml`: the libvirt domain of each `vm` module instance.

Each instance of a `vm` module becomes one KVM domain: its module's cores and
memory, its image as a virtio disk, one virtio NIC, a serial console, and
fsc's own facts (site, instance, module, host, image, tap device, the host's
switch ports) under ``<metadata>`` in the ``urn:flowstream:fsc:1`` namespace.

The NIC is where the host's Click configuration expects the module: the tap
device :func:`tap_name` (``fs-ids.2``).  Click sends each steered frame there
with an 802.1Q tag (the step's tag) and reads the module's answer from the
same device (same VLAN id, the output index in the PCP bits).  So the NIC is a
plain ``<interface type='ethernet'>`` with ``<target dev='TAP'
managed='no'/>``: libvirt attaches the VM to a tap device that the host agent
(``fsc agent``) creates beforehand, and nothing else (no bridge, no Open
vSwitch port) sits between Click and the VM.  The host's switch ports belong
to Click alone; the VM never sees them (they are recorded in the metadata for
the operator only).  In the lab, where there is no hypervisor, the agent puts
a veth pair in place of the tap: ``tap_name`` on the host side, its peer in
the instance's own network namespace (backends/agent).

Facts that the file fixes on purpose, so that a domain defined from it is the
same every time:

* name = the instance name (``ids#2``; fsc names never contain ``/``);
  uuid = a name-based UUID of site and instance; the NIC MAC address is derived
  from site and instance (locally administered, ``52:54:00`` prefix);
  the tap device name comes from :func:`tap_name`, which the Click host
  configuration uses too.
* A relative ``image`` is a file in :data:`IMAGE_DIR`; an absolute one is used
  as written.  The disk is ``<transient shareBacking='yes'/>``: every replica of
  a module boots from the same image file and writes only to a throw-away
  overlay, so replicas never share a writable disk and the image stays pristine.

Every value is written through :func:`xml_escape` (autoescaping), so any
string, quotes, ``]]>``, ``&`` and tabs included, comes back exactly when the
file is parsed.  Characters that XML 1.0 cannot carry at all (C0 controls other
than tab, newline and carriage return) raise ``ValueError``.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import uuid
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from compiler.pipeline import Compiled

IMAGE_DIR = "/var/lib/libvirt/images"
NAMESPACE = "urn:flowstream:fsc:1"
_UUID_NS = uuid.uuid5(uuid.NAMESPACE_URL, NAMESPACE)

IFNAMSIZ = 16  # Linux: interface names have at most 15 characters
_TAP_PREFIX = "fs-"
_NAME_CHARS = re.compile(r"[A-Za-z0-9_-]+")  # FSL identifiers, less the leading-character rule
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def tap_name(instance: str, index: int = 0) -> str:
    """The tap device of NIC ``index`` of ``instance`` (at most 15 characters).

    ``fs-`` + the instance with ``#`` written as ``.`` (``ids#2`` ->
    ``fs-ids.2``), + ``.pN`` for NIC N > 0 (``fs-ids.2.p1``).  FSL names never
    contain ``.``, so these names are distinct for distinct (instance, NIC).
    A name that would be too long (or an instance with characters outside FSL
    names) becomes ``fs-`` + up to 4 characters of the instance + ``.x`` + 6
    hex digits of a SHA-256 of instance and NIC: the ``.x`` never occurs in the
    first form, so the two forms never collide with each other.
    """
    base, sep, replica = instance.partition("#")
    plain = _NAME_CHARS.fullmatch(base) is not None and (not sep or replica.isdigit())
    name = _TAP_PREFIX + base + (f".{replica}" if replica else "") + (f".p{index}" if index else "")
    if plain and len(name) < IFNAMSIZ and replica.isascii():
        return name
    digest = hashlib.sha256(f"{instance}\0{index}".encode()).hexdigest()[:6]
    head = "".join(_NAME_CHARS.findall(base))[:4]
    return f"{_TAP_PREFIX}{head}.x{digest}"


def mac_address(site: str, instance: str, index: int) -> str:
    h = hashlib.sha256(f"{site}\0{instance}\0{index}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in h[:3])


def xml_escape(value: Any) -> Markup:
    """Text safe in XML element content and in attributes quoted with ``'`` or ``"``."""
    if isinstance(value, Markup):
        return value
    text = str(value)
    bad = _NOT_XML.search(text)
    if bad:
        raise ValueError(f"{text!r}: character U+{ord(bad.group()):04X} cannot be written in an XML document")
    return Markup(str(escape(text)).replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;"))


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parent)),
    autoescape=True,
    finalize=xml_escape,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def image_path(image: str) -> str:
    return posixpath.join(IMAGE_DIR, image)


def domain_xml(c: Compiled, module: str, instance: str, host: str) -> str:
    site = c.site
    m = site.module(module)
    h = site.host(host)
    ports = [{"switch": sw, "port": port} for sw, port in h.ports]
    image = m.image or ""
    return _ENV.get_template("domain.xml.j2").render(
        name=instance,
        uuid=str(uuid.uuid5(_UUID_NS, f"{site.name}/{instance}")),
        ns=NAMESPACE,
        site=site.name,
        instance=instance,
        module=m.name,
        host=h.name,
        image=image,
        image_path=image_path(image),
        memory_kib=-(-m.memory // 1024),
        vcpus=m.cores,
        tap=tap_name(instance),
        mac=mac_address(site.name, instance, 0),
        ports=ports,
    )


def render_vm(c: Compiled) -> dict[str, str]:
    """``vm/INSTANCE.xml`` for every instance of every `vm` module."""
    files: dict[str, str] = {}
    host_of = c.host_of()
    taps: dict[tuple[str, str], str] = {}
    for m in c.site.modules:
        if m.kind != "vm":
            continue
        for inst in m.instance_names():
            host = host_of[inst]
            tap = tap_name(inst)
            other = taps.setdefault((host, tap), inst)
            if other != inst:  # a 24-bit hash collision of two long names on one host
                raise ValueError(f"instances `{other}` and `{inst}` on host `{host}` both get tap device {tap}")
            files[f"vm/{inst}.xml"] = domain_xml(c, m.name, inst, host)
    return dict(sorted(files.items()))
