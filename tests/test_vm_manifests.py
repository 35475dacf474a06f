"""`vm/INSTANCE.xml`: every example's domains pass `virt-xml-validate`, match
their golden files, render deterministically, and carry any string (hostile
images included) through XML escaping unchanged; tap device names are short,
valid and distinct."""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.emit.output import render
from backends.emit.vm.generate import IMAGE_DIR, NAMESPACE, image_path, render_vm, tap_name
from compiler.check.frontend import run
from compiler.pipeline import Compiled, compile_site
from fslang.api import load
from fslang.values import escape_string, uncarried
from tests.conftest import EXAMPLES, ROOT
from tests.golden_files import check_golden

GOLDEN = ROOT / "tests" / "golden" / "vm"
NS = f"{{{NAMESPACE}}}"
DEVICE_NAME = re.compile(r"[a-zA-Z0-9_.\-]+")  # libvirt's deviceName, less `\`, `:` and `/`
EXAMPLE_IDS = [p.stem for p in EXAMPLES]


@functools.cache
def compiled(stem: str) -> Compiled:
    result = load(ROOT / "examples" / f"{stem}.fs")
    assert result.site is not None
    c = compile_site(result.site)
    assert c.placement is not None, [d.message for d in c.diagnostics]  # manifests need only the placement
    return c


def _require_validator() -> None:
    missing = [t for t in ("virt-xml-validate", "xmllint") if shutil.which(t) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: run scripts/system-deps.sh (Debian libvirt-clients, libxml2-utils)"
        )


def _validate(path: Path) -> None:
    res = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"{path.name}: {res.stdout}{res.stderr}"


def _shape(e: ET.Element) -> tuple:
    return (e.tag, tuple(sorted(e.attrib)), tuple(_shape(k) for k in e))


# ---- the examples ------------------------------------------------------------------------------
@pytest.mark.parametrize("stem", EXAMPLE_IDS)
def test_every_vm_instance_validates(stem: str, tmp_path: Path) -> None:
    _require_validator()
    c = compiled(stem)
    files = render_vm(c)
    vm_instances = {i for m in c.site.modules if m.kind == "vm" for i in m.instance_names()}
    assert set(files) == {f"vm/{i}.xml" for i in vm_instances}
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        _validate(path)


@pytest.mark.parametrize("stem", EXAMPLE_IDS)
def test_domain_content(stem: str) -> None:
    c = compiled(stem)
    host_of = c.host_of()
    for m in c.site.modules:
        if m.kind != "vm":
            continue
        for inst in m.instance_names():
            root = ET.fromstring(render_vm(c)[f"vm/{inst}.xml"])
            host = c.site.host(host_of[inst])
            assert root.get("type") == "kvm"
            assert root.findtext("name") == inst and "/" not in inst
            assert int(root.findtext("vcpu")) == m.cores
            mem = root.find("memory")
            assert mem.get("unit") == "KiB" and int(mem.text) * 1024 >= m.memory > (int(mem.text) - 1) * 1024
            assert root.findtext("os/type") == "hvm"
            disk = root.find("devices/disk")
            assert disk.find("driver").get("type") == "qcow2" and disk.find("target").get("bus") == "virtio"
            assert disk.find("source").get("file") == image_path(m.image) and image_path(m.image).startswith("/")
            assert root.find("devices/serial") is not None and root.find("devices/console") is not None
            # one NIC: the tap device the host's Click configuration sends to and reads from
            nics = root.findall("devices/interface")
            assert len(nics) == 1
            nic = nics[0]
            assert nic.get("type") == "ethernet" and nic.find("source") is None
            assert nic.find("virtualport") is None and nic.find("model").get("type") == "virtio"
            assert nic.find("target").get("dev") == tap_name(inst) and nic.find("target").get("managed") == "no"
            meta = root.find(f"metadata/{NS}domain")
            assert meta.findtext(f"{NS}instance") == inst and meta.findtext(f"{NS}module") == m.name
            assert meta.findtext(f"{NS}host") == host.name and meta.findtext(f"{NS}image") == m.image
            assert meta.findtext(f"{NS}tap") == tap_name(inst)
            ports = [(p.get("switch"), int(p.get("port"))) for p in meta.findall(f"{NS}port")]
            assert ports == list(host.ports)


def test_vm_tap_is_the_click_tap() -> None:
    """The device Click's configuration talks to is the VM's NIC (issue 4: no bridge in between)."""
    c = compiled("campus")
    click = render(c)
    for _rel, text in render_vm(c).items():
        root = ET.fromstring(text)
        inst = root.findtext("name")
        host = root.findtext(f"metadata/{NS}domain/{NS}host")
        tap = root.find("devices/interface/target").get("dev")
        conf = click[f"click/{host}.click"]
        assert f"ToDevice({tap})" in conf and f"FromDevice({tap}," in conf, (inst, tap)


@pytest.mark.parametrize("stem", EXAMPLE_IDS)
def test_vm_golden(stem: str) -> None:
    check_golden(render_vm(compiled(stem)), GOLDEN / stem, ".xml", stem)


@pytest.mark.parametrize("stem", EXAMPLE_IDS)
def test_render_is_deterministic(stem: str) -> None:
    once = render_vm(compiled(stem))
    assert render_vm(compiled(stem)) == once
    again = compile_site(load(ROOT / "examples" / f"{stem}.fs").site)
    assert render_vm(again) == once


def test_emit_includes_the_vm_files() -> None:
    c = compiled("campus")
    files = render(c)
    vm = {k: v for k, v in files.items() if k.startswith("vm/")}
    assert vm == render_vm(c) and vm


# ---- tap names ---------------------------------------------------------------------------------
def test_tap_names_examples() -> None:
    assert tap_name("ids") == "fs-ids"
    assert tap_name("ids#2") == "fs-ids.2"
    assert tap_name("ids#2", 1) == "fs-ids.2.p1"
    assert tap_name("candidate") == "fs-candidate"
    long = tap_name("a_rather_long_module#12")
    assert len(long) <= 15 and long.startswith("fs-a_ra.x")
    assert tap_name("a_rather_long_module#12") == long  # deterministic


fsl_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,20}", fullmatch=True)
instances = st.one_of(fsl_names, st.tuples(fsl_names, st.integers(1, 10_000)).map(lambda t: f"{t[0]}#{t[1]}"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(instances, st.integers(0, 3)), min_size=1, max_size=40, unique=True))
def test_tap_names_are_valid_and_distinct(nics: list[tuple[str, int]]) -> None:
    names = [tap_name(inst, i) for inst, i in nics]
    for n in names:
        assert len(n) <= 15 and n.startswith("fs-") and DEVICE_NAME.fullmatch(n), n
    assert len(set(names)) == len(names)


@given(st.text(max_size=30), st.integers(0, 5))
def test_tap_name_of_any_string_is_a_device_name(instance: str, i: int) -> None:
    n = tap_name(instance, i)
    assert len(n) <= 15 and DEVICE_NAME.fullmatch(n), n


# ---- hostile strings ---------------------------------------------------------------------------
HOSTILE = [
    '"',
    "'",
    "</",
    "]]>",
    "&",
    "&amp;",
    ";",
    "$(",
    "`",
    "{{",
    "}}",
    "{%",
    "\\",
    '\\"',
    "<!--",
    "<![CDATA[",
    "\t",
    " ",
    "/",
    "..",
    "é",
    "\u2028",
    "\U0001f600",
    "%s",
    "#",
    "${x}",
]
# what an FSL string can hold: no control characters but tab, no U+FFFE/U+FFFF (E0016)
xml_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\x00").filter(
    lambda ch: uncarried(ch) is None
)
hostile = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(xml_chars, max_size=4)), max_size=8).map("".join)

SITE = """site h
switch sw dpid 1
host a at sw:1, sw:3 cores 8 memory 16GiB runs click, process, vm
edge e at sw:2 default
module v = dpi() kind vm image {image}
module p = process(command: {command})
policy x via v >> p
"""


def site_with(image: str, command: str = "true") -> Compiled:
    result = run("h.fs", SITE.format(image=escape_string(image), command=escape_string(command)))
    assert result.site is not None, [d.message for d in result.diagnostics]
    c = compile_site(result.site)
    assert c.ok
    return c


@functools.cache
def _baseline() -> Compiled:
    return site_with("base.qcow2")


def with_image(image: str) -> Compiled:
    """The baseline site with module `v`'s image replaced in the IR (any string, not only FSL's)."""
    c = _baseline()
    mods = tuple(dataclasses.replace(m, image=image) if m.name == "v" else m for m in c.site.modules)
    return dataclasses.replace(c, site=dataclasses.replace(c.site, modules=mods))


def _check_recovered(c: Compiled, image: str) -> None:
    root = ET.fromstring(render_vm(c)["vm/v.xml"])
    base = ET.fromstring(render_vm(_baseline())["vm/v.xml"])
    assert _shape(root) == _shape(base)
    assert root.find("devices/disk/source").get("file") == image_path(image)
    assert (root.find(f"metadata/{NS}domain/{NS}image").text or "") == image
    assert root.findtext("name") == "v"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile.filter(bool))  # an empty image is no image (E0305)
def test_hostile_image_from_fsl_round_trips(image: str) -> None:
    c = site_with(image)
    assert c.site.module("v").image == image
    _check_recovered(c, image)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        hostile,
        st.text(
            st.characters(blacklist_categories=("Cs",)).filter(
                lambda ch: ch in "\t\n\r" or ord(ch) >= 0x20 and ch not in "\ufffe\uffff"
            )
        ),
    )
)
def test_any_xml_representable_image_round_trips(image: str) -> None:
    _check_recovered(with_image(image), image)


@pytest.mark.parametrize(
    "image",
    [
        "a\"b'c.qcow2",
        "</source>]]>&amp;$(reboot);{{ x }}.qcow2",
        "/srv/images/with space/\\back\\slash.qcow2",
        "tab\there.qcow2",
        "é😀.qcow2",
    ],
)
def test_hostile_image_still_validates(image: str, tmp_path: Path) -> None:
    _require_validator()
    path = tmp_path / "v.xml"
    path.write_text(render_vm(site_with(image))["vm/v.xml"], encoding="utf-8")
    _validate(path)


@pytest.mark.parametrize("ch", ["\x01", "\x1b", "\x7f\x08", "\ufffe"])
def test_unrepresentable_character_is_refused(ch: str) -> None:
    """XML 1.0 cannot carry C0 controls (or U+FFFE/U+FFFF) even as character references."""
    with pytest.raises(ValueError, match="cannot be written in an XML document"):
        render_vm(with_image(f"bad{ch}.qcow2"))


def test_relative_and_absolute_images() -> None:
    assert image_path("suricata.qcow2") == f"{IMAGE_DIR}/suricata.qcow2"
    assert image_path("/srv/vm/x.qcow2") == "/srv/vm/x.qcow2"
