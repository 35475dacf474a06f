"""Every diagnostic code, declared as data: a title and a minimal site that
triggers it.  `docs/diagnostics.md` is generated from this table
(`python -m fslang.codes > docs/diagnostics.md`) and a test checks each
example yields its code."""

from __future__ import annotations

import sys
from dataclasses import dataclass

BASE = """site s
switch sw dpid 0x1 ports 8
host h at sw:1 cores 4 memory 8GiB
edge out at sw:2 default
edge lan at sw:3 net 10.0.0.0/8
"""


@dataclass(frozen=True)
class Limit:
    """A bound on what a site may say, checked where the value enters, with
    the reason for it (shown in the diagnostic's hint and in the docs)."""

    what: str
    lo: int
    hi: int
    reason: str
    size: bool = False  # bytes: shown as FSL sizes

    def show(self, value: int) -> str:
        return fsl_size(value) if self.size else f"{value:,}"

    def text(self) -> str:
        """``lo..hi`` as FSL would write the bounds."""
        return f"{self.show(self.lo)}..{self.show(self.hi)}"


def fsl_size(n: int) -> str:
    """A byte count as FSL writes it, in the largest unit that divides it (``1MiB``, ``1024TiB``)."""
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


KiB, MiB, GiB, TiB, PiB = 2**10, 2**20, 2**30, 2**40, 2**50

LIMITS: dict[str, Limit] = {
    "name": Limit(
        "characters in a name",
        1,
        64,
        "names become file names (`openflow/SWITCH.json`, `click/HOST.click`, `vm/MODULE#N.xml`), libvirt "
        "domain names and parts of Click identifiers; 64 keeps every derived name far below the 255-byte "
        "file-name limit of Linux file systems",
    ),
    "cores": Limit(
        "`cores` of a host or a module",
        1,
        1024,
        "an instance needs a core to run; 1024 is above the largest machines and KVM's vCPU limit per guest",
    ),
    "memory": Limit(
        "`memory` of a host or a module",
        MiB,
        PiB,
        "nothing runs in less than 1 MiB (libvirt counts memory in KiB); 1 PiB is above any machine and "
        "keeps byte counts exact in JSON readers that use doubles",
        size=True,
    ),
    "tcam": Limit(
        "`tcam` of a switch",
        1,
        2**32 - 1,
        "a switch needs room for at least its table-miss entry; OpenFlow counts entries in 32 bits",
    ),
    "ports": Limit(
        "`ports` of a switch",
        1,
        0xFEFF,
        "Open vSwitch numbers ports in 16 bits and reserves 0xff00 and above (OFPP_MAX)",
    ),
    "dpid": Limit("a switch `dpid`", 0, 2**64 - 1, "an OpenFlow datapath id has 64 bits"),
    "replicas": Limit(
        "the replicas of a module",
        1,
        256,
        "flows are shared among replicas by a flow hash with 256 buckets: each replica needs a bucket",
    ),
    "weight": Limit(
        "a replica's weight (`weights 3, 1`)",
        1,
        1000,
        "weights share the flow hash's 256 buckets among replicas in proportion (each replica keeps at least "
        "one bucket), so ratios beyond a few hundred to one cannot be told apart",
    ),
    "stages": Limit(
        "stages a packet passes along one path of a pipeline",
        1,
        64,
        "each stage is one more steering state and host visit per packet; real pipelines have a handful, "
        "and deeper nesting would exhaust the compiler's recursion",
    ),
    "rate": Limit(
        "a rate (bits or packets per second; above 0)",
        0,
        10**15,
        "a rate of 0 passes nothing (write `drop`); 1 Pbps is above any link and exact in a double",
    ),
    "size": Limit("a size", 0, PiB, "1 PiB is above any memory or burst and exact in a double", size=True),
}


@dataclass(frozen=True)
class Code:
    code: str
    title: str
    example: str | None  # a whole site; None when the trigger is not file content
    note: str = ""


def _b(extra: str) -> str:
    return BASE + extra


CODES: tuple[Code, ...] = (
    Code(
        "E0001",
        "the file is not UTF-8 text (or contains NUL bytes)",
        BASE + "# \udcff\n",
        "the example holds a byte that is not UTF-8",
    ),
    Code("E0002", "syntax error", _b("policy p from lan via\n")),
    Code("E0003", "unexpected character or unterminated string", _b('policy p via "open\n')),
    Code("E0004", "statement nested too deeply", _b("policy p match " + "(" * 300 + "tcp" + ")" * 300 + " drop\n")),
    Code(
        "E0005",
        "the file cannot be read or is too large",
        None,
        "given a path that does not exist or a file over 4 MiB",
    ),
    Code("E0006", "a reserved keyword used as a name", _b("module tcp = monitor()\npolicy p via tcp\n")),
    Code("E0010", "invalid address", _b("policy p match host 10.0.0.300 drop\n")),
    Code(
        "E0011",
        "prefix with host bits set (the hint gives the network address)",
        _b("policy p match dst net 10.28.90.0/20 drop\n"),
    ),
    Code(
        "E0014",
        "number out of range (the limits and their reasons are listed under Limits below)",
        _b("policy p match vlan 5000 drop\n"),
    ),
    Code("E0015", "empty or inverted range", _b("policy p match tcp and dst port 90..80 drop\n")),
    Code(
        "E0016",
        "a string with a character the output files cannot carry: a control character (tab is fine), "
        "U+FFFE, U+FFFF or a surrogate (XML 1.0 forbids them)",
        _b('module m = process(command: "a\x01b")\npolicy p via m\n'),
        "the example holds the control character U+0001; a U+FFFF in an `image` (written into XML) is refused alike",
    ),
    Code(
        "E0017",
        "a name longer than 64 characters (names become file, domain and Click names)",
        BASE.replace("host h ", "host " + "h" * 65 + " "),
    ),
    Code("E0101", "`site` missing, not first, or repeated", BASE.replace("site s\n", "") + "site s\n"),
    Code("E0102", "a name defined twice", _b("set a = 10.0.0.1\nset a = 10.0.0.2\npolicy p match host a drop\n")),
    Code("E0103", "two switches with the same dpid", _b("switch sw2 dpid 0x1 ports 8\nlink sw:8 sw2:8\n")),
    Code("E0104", "a port beyond the switch's port count", _b("edge dmz at sw:9\n")),
    Code("E0105", "a switch port used twice", _b("edge dmz at sw:1\n")),
    Code("E0106", "more than one default edge", _b("edge other at sw:4 default\n")),
    Code("E0107", "a link from a switch to itself", _b("link sw:5 sw:6\n")),
    Code("E0108", "a switch not linked to the others", _b("switch sw2 dpid 0x2 ports 8\n")),
    Code("E0109", "a site with policies but no edge", "site s\nswitch sw dpid 0x1\npolicy p drop\n"),
    Code("E0110", "a required option is missing", _b("host h2 at sw:4 cores 2\n")),
    Code("E0111", "unknown module kind", _b("module m = monitor() kind clik\npolicy p via m\n")),
    Code("E0112", "an option given twice", _b("host h2 at sw:4 cores 2 cores 4 memory 1GiB\n")),
    Code("E0113", "`placement` or `default` set twice", _b("default drop\ndefault forward\n")),
    Code("E0201", "unknown set or class", _b("policy p match webb drop\n")),
    Code("E0202", "unknown switch", _b("edge dmz at core:4\n")),
    Code("E0203", "unknown module", _b('module ids = ids(rules: "r")\npolicy p via idz\n')),
    Code("E0204", "unknown edge", _b("policy p from internet drop\n")),
    Code("E0205", "unknown host", _b("module m = monitor()\npolicy p via m\npin m to h9\n")),
    Code("E0206", "a name of the wrong kind", _b("set web = 10.0.0.1\npolicy p via web\n")),
    Code("E0207", "unknown module type", _b("module m = firewal(allow: tcp)\npolicy p via m\n")),
    Code("E0208", "a class or set that refers to itself", _b("class a = tcp and a\npolicy p match a drop\n")),
    Code("E0301", "unknown module parameter", _b("module m = monitor(snk: true)\npolicy p via m\n")),
    Code("E0302", "missing module parameter", _b("module m = nat()\npolicy p via m\n")),
    Code("E0303", "module parameter of the wrong type", _b('module m = nat(to: "gw")\npolicy p via m\n')),
    Code(
        "E0304",
        "a module type that cannot run as the given kind",
        _b('module m = process(command: "x") kind click\npolicy p via m\n'),
    ),
    Code("E0305", "a `vm` module without an image", _b("module m = dpi()\npolicy p via m\n")),
    Code(
        "E0306",
        "two replica counts (or ranges, or sets of weights) for one module",
        _b("module m = monitor()\npolicy p from lan via m * 2\npolicy q from out via m * 3\n"),
    ),
    Code(
        "E0307", "a module parameter given twice", _b("module m = firewall(allow: tcp, allow: udp)\npolicy p via m\n")
    ),
    Code(
        "E0308",
        "a classify module without labels, or a label named like a built-in output",
        _b("module c = classify()\npolicy p via c\n"),
    ),
    Code(
        "E0309",
        "a process `command` whose quoting does not balance",
        _b('module m = process(command: "run \'x")\npolicy p via m\n'),
    ),
    Code("E0401", "a copy branch that does not end in a sink", _b("module m = monitor()\npolicy p via copy 5% to m\n")),
    Code(
        "E0402",
        "a split label the module does not output",
        _b('module i = ids(rules: "r") kind click\npolicy p via i { alrt: drop, else: pass }\n'),
    ),
    Code("E0403", "a split on a sink module", _b("module t = monitor(sink: true)\npolicy p via t { out: pass }\n")),
    Code("E0404", "a stage that is never reached", _b("module m = monitor()\npolicy p via drop >> m\n")),
    Code(
        "E0406",
        "a replica count outside 1..256 (the flow hash has 256 buckets)",
        _b("module m = monitor()\npolicy p via m * 0\n"),
    ),
    Code(
        "E0407",
        "a split label or `else` twice, or `else` not last",
        _b("module c = classify(a: tcp)\npolicy p via c { a: drop, a: pass }\n"),
    ),
    Code("E0408", "a box replicated or split", _b("box b at sw:4 -> sw:5\npolicy p via b * 2\n")),
    Code(
        "E0409",
        "a `case` arm that never matches",
        _b("policy p via case { tcp: pass, tcp and port 80: drop, else: pass }\n"),
    ),
    Code(
        "E0410",
        "a `symmetric` policy whose pipeline splits",
        _b("module c = classify(a: tcp)\npolicy p via c { a: drop, else: pass } symmetric\n"),
    ),
    Code(
        "E0411",
        "a pipeline whose packets can pass more than 64 stages along one path",
        _b("module m = monitor()\npolicy p via " + " >> ".join(["m"] * 65) + "\n"),
    ),
    Code(
        "E0412",
        "weights that do not give one weight per replica (per replica up to B for `replicas A..B`)",
        _b("module m = monitor()\npolicy p via m * 2..3 weights 3, 1\n"),
    ),
    Code(
        "W0403",
        "a replica range (`m * A..B`) where traffic enters a switch that is not `ovs`: when the platform "
        "scales the module, established connections may move (connection tracking needs Open vSwitch)",
        _b("module m = monitor()\npolicy p via m * 1..2\n"),
    ),
    Code(
        "E0501",
        "a policy that can never match (earlier policies take all its traffic)",
        _b("policy a match tcp drop\npolicy b match tcp and dst port 80 drop\n"),
    ),
    Code("E0502", "a policy that matches no packet", _b("policy p match tcp and udp drop\n")),
    Code("E0505", "a value of the wrong type in a match", _b("policy p match host 10.0.0.0/8 drop\n")),
    Code(
        "E0601",
        "a module both pinned to and avoiding a host",
        _b("module m = monitor()\npolicy p via m\npin m to h\navoid m on h\n"),
    ),
    Code(
        "E0602",
        "a pin to a host that does not run the module's kind",
        _b("host h2 at sw:4 cores 2 memory 4GiB runs process\nmodule m = monitor()\npolicy p via m\npin m to h2\n"),
    ),
    Code(
        "E0701",
        "placement does not fit: a resource is short (the message says which, where, by how much); "
        "`fsc check` counts first, so a site far too big for its hosts is refused at once",
        _b("module m = monitor() cores 3\npolicy p via m * 2\n"),
    ),
    Code(
        "E0702",
        "no host can run a module (kinds, pins, avoids or host sizes rule every host out)",
        _b("module m = monitor()\npolicy p via m\navoid m on h\n"),
    ),
    Code(
        "E0703",
        "a box whose users cannot be told apart when packets come back from it",
        _b("box b at sw:4 -> sw:5\nmodule m = monitor()\npolicy p from lan via b >> m\npolicy q from out via b\n"),
    ),
    Code(
        "E0801",
        "a switch needs more flow entries than its `tcam` holds (the message says by how much)",
        BASE.replace("ports 8", "ports 8 tcam 10") + "module m = monitor()\npolicy p via m\n",
    ),
    Code(
        "E0802",
        "more steering tags or classification entries than the platform can tell apart",
        None,
        "reported by `fsc compile` when a site needs more than 262,143 distinct steering steps per update "
        "generation (MPLS labels; up to 2,046 travel as VLAN ids) or more than 32,767 distinct decision lists",
    ),
    Code(
        "E0803",
        "a pipeline whose decisions multiply past 1,024 choices (or 4,096-term header conditions) at one "
        "classification point",
        _b(
            "policy p via "
            + " >> ".join(
                "case { " + ", ".join(f"{f} {v}: pass" for v in vals) + ", else: pass }"
                for f, vals in (
                    ("dscp", (1, 2, 3, 4)),
                    ("src port", (1, 2, 3, 4)),
                    ("dst port", (1, 2, 3, 4)),
                    ("src net", ("10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16", "10.4.0.0/16")),
                    ("dst net", ("10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16", "10.4.0.0/16")),
                )
            )
            + "\n"
        ),
        "the switch takes every header decision of a pipeline (case arms, replica and copy shares, what follows "
        "each module output) where it classifies the packet, so sequential decisions multiply; so do the "
        "header conditions of one choice (sequential port-range `case`s under `by src` replicas)",
    ),
    Code(
        "E0804",
        "a match or decision list that would spell into more than 100,000 flow entries (or a module's match "
        "into more than 10,000 host patterns, or a switch's tables past 1,000,000 entries)",
        _b("module m = monitor()\npolicy p match tcp and src port 1024..65535 and dst port 1024..65535 via m\n"),
        "a switch without `ovs` cannot mask transport ports, so each masked port is spelt as one entry per "
        "port; two wide ranges multiply into billions. Checked before any entry is built; a switch whose "
        "policies each fit but together pass 1,000,000 entries stops being built there (seconds, not minutes)",
    ),
    Code("W0001", "a definition that is never used", _b("set unused = 10.0.0.1\n")),
    Code(
        "W0302", "`image` on a module that is not a `vm`", _b('module m = monitor() image "m.qcow2"\npolicy p via m\n')
    ),
    Code(
        "W0701",
        "a note from exact placement (`--optimal`): the solver's limits were reached",
        None,
        "printed by `fsc compile --optimal` when the exact solver stops at its time limit or finds nothing",
    ),
    Code(
        "W0702",
        "an instance of a host that is down or drained that no other host can take: it stays there, lost",
        None,
        "reported by the controller's failover and drain (and `fsc plan`/`apply` while a host is out), "
        "and shown by `fsc status`: the message says why no other host fits (pins, kinds, cores, memory)",
    ),
    Code(
        "W0501",
        "a policy that partly overlaps an earlier one (with an example packet)",
        _b("policy a match tcp and dst port 80 drop\npolicy b match src net 10.0.0.0/8 drop\n"),
    ),
    Code("W0503", "an edge listed twice in `from`", _b("policy p from lan, lan drop\n")),
)


def markdown() -> str:
    out = [
        "# Diagnostics",
        "",
        "Every code `fsc check` and `fsc compile` can print, with a minimal site that triggers it.",
        "`E` codes are errors (the site is rejected, exit code 1); `W` codes are warnings.",
        "Generated from `fslang/codes.py` by `python -m fslang.codes > docs/diagnostics.md`;",
        "`tests/test_codes.py` runs every example and checks it yields its code.",
        "",
    ]
    for c in CODES:
        out.append(f"## {c.code}: {c.title}")
        out.append("")
        if c.note:
            out.append(c.note[0].upper() + c.note[1:] + ".")
            out.append("")
        if c.example is not None:
            shown = c.example.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            out += ["```", shown.rstrip("\n"), "```", ""]
    out += [
        "## Limits",
        "",
        "What a site may say, checked where the value enters (the diagnostic's hint gives the reason).",
        "",
        "| what | allowed | why |",
        "|---|---|---|",
    ]
    out += [f"| {lim.what} | {lim.text()} | {lim.reason} |" for lim in LIMITS.values()]
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(markdown())
