"""Input generators of the site fuzzer (``benchmarks.fuzz_sites``).

Every generator is a function of a ``random.Random`` so an input is
reproducible from its seed and index:

* ``site``: a site built with the language in mind: switches, links, hosts,
  edges, sets, classes, modules of every catalogue type, policies with every
  pipeline form, pins and avoids, whose names mostly resolve, so inputs get
  through the checker into placement, steering, lowering and rendering;
  values are usually sensible and sometimes on or past a boundary (0, 255,
  256, 4096, 65536, 2**32, 2**64, numbers of thousands of digits), names
  sometimes long or reserved, strings sometimes with characters no output
  file can carry, pipelines sometimes deep or long.
* ``grammar``: random derivations of the Lark grammar (``grammar/fsl.lark``)
  with terminals drawn from the same pools: syntax the site generator never
  writes.
* ``mutant``: an example site or a generated one, mutated by tokens and
  lines: deletions, duplications, swaps, boundary numbers, long or odd names,
  unicode, deep nesting, long pipelines, truncation, stray bytes.
* ``junk``: random bytes and token soup.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from fslang.parser.lalr import lark_parser, reserved_keywords

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.fs"))

BOUNDARY_INTS = [
    "0", "1", "2", "7", "8", "63", "64", "100", "255", "256", "257", "1023", "1024", "1025", "4094", "4095",
    "4096", "65279", "65280", "65535", "65536", "2147483647", "4294967295", "4294967296", "281474976710656",
    "18446744073709551615", "18446744073709551616", "0x0", "0xff", "0x100", "0xfff", "0x1000", "0xffffffffffffffff",
    "0x10000000000000000", "00000000000000000001", "9" * 41, "9" * 5000, "0x" + "f" * 5000,
]  # fmt: skip
ODD_CHARS = [
    "\x00", "\x01", "\x1b", "\x7f", "\x85", "\t", "\r", "\u00e9", "\u2028", "\u202e", "\ufeff", "\ufffd",
    "\ufffe", "\uffff", "\U0001f600", "\U0010ffff", '"', "\\", "$", "%", "{", "}", "#", "/", ":", "..", "'",
]  # fmt: skip
TYPES = ["firewall", "classify", "monitor", "ratelimit", "nat", "loadbalance", "encrypt", "decrypt", "tunnel",
         "ids", "dpi", "process"]  # fmt: skip
KINDS = ["click", "process", "vm"]
SIZE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "KB", "MB", "GB", "TB"]
RATE_UNITS = ["bps", "Kbps", "Mbps", "Gbps", "Tbps", "pps", "Kpps", "Mpps", "Gpps"]


# ---------------------------------------------------------------- values


def chance(rng: random.Random, p: float) -> bool:
    return rng.random() < p


def number(rng: random.Random, lo: int = 0, hi: int = 100, odd: float = 0.1) -> str:
    """A number in ``lo..hi`` mostly; a boundary or absurd one with probability ``odd``."""
    if chance(rng, odd):
        return rng.choice(BOUNDARY_INTS)
    return str(rng.randint(lo, hi))


def long_name(rng: random.Random) -> str:
    n = rng.choice([63, 64, 65, 100, 255, 256, 300, 5000])
    return "n" + "x" * (n - 1)


def odd_name(rng: random.Random) -> str:
    return rng.choice(
        [long_name(rng), rng.choice(sorted(reserved_keywords())), "_", "a-", "A_b-c", "x" + rng.choice(ODD_CHARS)]
    )


def size(rng: random.Random, odd: float = 0.1) -> str:
    if chance(rng, odd):
        return rng.choice(["0GiB", "0B", "1B", "1023KiB", "1MiB", "0.5MiB", "1024TiB", "1025TiB", "9" * 60 + "TiB"])
    return f"{rng.choice([1, 2, 4, 8, 16, 64, 256, 512])}{rng.choice(['MiB', 'GiB', 'GB'])}"


def rate(rng: random.Random, odd: float = 0.1) -> str:
    if chance(rng, odd):
        return rng.choice(["0bps", "0.0001pps", "1bps", "1000Tbps", "1001Tbps", "9" * 50 + "Gbps", "4.3Gpps"])
    return f"{rng.choice([1, 10, 100, 1.5, 0.5])}{rng.choice(RATE_UNITS)}"


def percent(rng: random.Random, odd: float = 0.1) -> str:
    if chance(rng, odd):
        return rng.choice(["0%", "0.0000001%", "100%", "100.5%", "101%", "9" * 50 + "%"])
    return f"{rng.choice([1, 5, 10, 50, 0.5, 99.9])}%"


def ipv4(rng: random.Random, odd: float = 0.05) -> str:
    if chance(rng, odd):
        return rng.choice(["256.1.1.1", "0.0.0.0", "255.255.255.255", "999.999.999.999"])
    return ".".join(str(rng.randint(0, 255)) for _ in range(4))


def prefix4(rng: random.Random, odd: float = 0.1) -> str:
    n = rng.choice([0, 8, 16, 24, 28, 30, 32, 33][: 8 if chance(rng, odd) else 7]) if chance(rng, 0.2) else 24
    a = rng.getrandbits(32)
    if not chance(rng, odd):  # host bits clear
        a = a >> (32 - n) << (32 - n) if 0 < n <= 32 else (0 if n == 0 else a)
    return f"{a >> 24 & 255}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}/{n}"


def ipv6(rng: random.Random) -> str:
    return rng.choice(["::", "::1", "2001:db8::1", "fe80::1:2", "2001:db8:0:0:0:0:0:ff", "ffff::ffff"])


def prefix6(rng: random.Random, odd: float = 0.1) -> str:
    if chance(rng, odd):
        return rng.choice(["2001:db8::1/64", "::/129", "::1/0"])
    return rng.choice(["2001:db8::/32", "::/0", "fe80::/10", "2001:db8::1/128", "2001:db8:5::/48"])


def mac(rng: random.Random) -> str:
    return ":".join(f"{rng.getrandbits(8):02x}" for _ in range(6))


def string(rng: random.Random, odd: float = 0.1) -> str:
    body = rng.choice(["rules.txt", "img.qcow2", "run --flag", "k3y", "a b c", "/bin/true", "x"])
    if chance(rng, odd):
        for _ in range(rng.randint(1, 3)):
            pos = rng.randint(0, len(body))
            body = body[:pos] + rng.choice(ODD_CHARS) + body[pos:]
    if chance(rng, odd / 3):
        body = rng.choice(["", " ", "'", "\\", "x" * 70000])
    return '"' + body.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- the site generator


class SiteGen:
    """One random site, written statement by statement.  With ``odd`` 0 the
    site is meant to be right (names resolve, values have the right type,
    hosts have room): it reaches placement, steering, lowering and
    rendering; ``odd`` is the chance of each mistake or boundary value."""

    def __init__(self, rng: random.Random, odd: float, deep: bool = False) -> None:
        self.rng = rng
        self.odd = odd
        self.lines: list[str] = []
        self.switches: list[tuple[str, int]] = []  # name, ports
        self.free: dict[str, list[int]] = {}
        self.hosts: list[str] = []
        self.edges: list[str] = []
        self.sets: dict[str, list[str]] = {"addr": [], "net": [], "port": [], "mac": []}
        self.classes: list[str] = []
        self.modules: dict[str, str] = {}  # name -> type
        self.sink_modules: list[str] = []
        self.replicas: dict[str, str] = {}
        self.labels: dict[str, list[str]] = {}
        self.boxes: list[str] = []
        self.n = 0
        # sizes: the header-space work of `case` arms grows steeply with nested and/or/not
        self.match_depth = rng.choice([3, 4] if deep else [0, 1, 1, 2])
        self.pipe_depth = rng.choice([3, 4] if deep else [0, 1, 1, 2])

    def odd_one(self, p: float = 1.0) -> bool:
        return chance(self.rng, self.odd * p)

    def name(self, prefix: str) -> str:
        self.n += 1
        if self.odd_one(0.25):
            return odd_name(self.rng)
        return f"{prefix}{self.n}"

    def ref(self, pool: list[str], prefix: str = "u") -> str:
        if pool and not self.odd_one(0.5):
            return self.rng.choice(pool)
        return self.name(prefix)

    def port(self) -> str:
        rng = self.rng
        if not self.switches or self.odd_one(0.3):
            return f"{self.ref([s for s, _ in self.switches], 'sw')}:{number(rng, 1, 9, 0.5)}"
        sw, n = rng.choice(self.switches)
        free = self.free[sw]
        p = free.pop(0) if free else rng.randint(1, n + 1)
        return f"{sw}:{p}"

    def emit(self, line: str) -> None:
        self.lines.append(line)

    # ---- values of a type, sometimes of another one
    def typed(self, kind: str) -> str:
        rng = self.rng
        if self.odd_one(0.3):
            kind = rng.choice(["addr", "net", "port", "mac"])
        if self.sets[kind] and chance(rng, 0.2):
            return rng.choice(self.sets[kind])
        if kind == "addr":
            one = lambda: ipv4(rng, self.odd) if chance(rng, 0.8) else ipv6(rng)  # noqa: E731
        elif kind == "net":
            one = lambda: prefix4(rng, self.odd) if chance(rng, 0.8) else prefix6(rng, self.odd)  # noqa: E731
        elif kind == "mac":
            return mac(rng)
        else:
            return self.ports_val()
        if chance(rng, 0.2):
            return "{" + ", ".join(one() for _ in range(rng.randint(1, 3))) + "}"
        return one()

    def ports_val(self) -> str:
        rng = self.rng
        r = rng.randrange(3)
        if r == 0:
            return number(rng, 0, 65535, self.odd)
        if r == 1:
            lo = rng.randint(0, 60000)
            return f"{lo}..{lo + rng.randint(0, 2000) if not self.odd_one() else number(rng, 0, 9, 1.0)}"
        return "{" + ", ".join(number(rng, 0, 65535, self.odd) for _ in range(rng.randint(1, 4))) + "}"

    def match(self, depth: int = 0) -> str:
        rng = self.rng
        if depth >= self.match_depth or chance(rng, 0.5):
            d = rng.choice(["", "src ", "dst "])
            prims = [
                lambda: rng.choice(["ip", "ip6", "arp", "tcp", "udp", "icmp", "icmp6"]),
                lambda: f"proto {number(rng, 0, 255, self.odd * 2)}",
                lambda: f"{d}host {self.typed('addr')}",
                lambda: f"{d}net {self.typed('net')}",
                lambda: f"{d}port {self.typed('port')}",
                lambda: f"vlan {number(rng, 0, 4095, self.odd * 2)}",
                lambda: f"ether {d}{self.typed('mac')}",
                lambda: f"dscp {number(rng, 0, 63, self.odd * 2)}",
                lambda: self.ref(self.classes, "c") if self.classes or self.odd_one() else "tcp",
            ]
            return rng.choice(prims)()
        r = rng.randrange(4)
        if r == 0:
            return "not " + self.match(depth + 1)
        if r == 3:
            return "(" + self.match(depth + 1) + ")"
        word = " and " if r == 1 else " or "
        return word.join(self.match(depth + 1) for _ in range(2))

    # ---- statements
    def platform(self) -> None:
        rng = self.rng
        for k in range(rng.choice([1, 1, 2, 3])):
            name = self.name("sw")
            ports = rng.choice([8, 16, 24])
            opts = [f"dpid {hex(k + 1) if not self.odd_one() else number(rng, 0, 9, 1.0)}"]
            opts.append(f"ports {ports if not self.odd_one() else number(rng, 1, 64, 1.0)}")
            if chance(rng, 0.2):
                opts.append(f"tcam {number(rng, 500, 100000, self.odd * 2)}")
            if chance(rng, 0.2):
                opts.append(f"openflow {rng.choice(['1.3', '1.4', '1.5'])}")
            rng.shuffle(opts)
            self.emit(f"switch {name} " + " ".join(opts))
            self.switches.append((name, ports))
            self.free[name] = list(range(1, ports + 1))
        for a, b in zip(self.switches, self.switches[1:]):
            if not self.odd_one(0.5):
                self.emit(f"link {a[0]}:{self.free[a[0]].pop()} {b[0]}:{self.free[b[0]].pop()}")
        for _ in range(rng.choice([0, 1, 1, 2, 3]) if self.odd else rng.choice([1, 2, 3])):
            name = self.name("h")
            at = ", ".join(self.port() for _ in range(rng.choice([1, 1, 2])))
            cores = number(rng, 1, 4, self.odd) if self.odd else str(rng.choice([8, 16, 32]))
            memory = size(rng, self.odd) if self.odd else rng.choice(["32GiB", "64GiB"])
            opts = [f"cores {cores}", f"memory {memory}"]
            if chance(rng, 0.2):
                kinds = rng.sample(KINDS, rng.randint(1, 3)) + (["klick"] if self.odd_one(0.5) else [])
                opts.append("runs " + ", ".join(kinds))
            if chance(rng, 0.1):
                opts.append("spare")
            if self.odd_one(0.3):
                opts.pop(rng.randrange(len(opts)))
            self.emit(f"host {name} at {at} " + " ".join(opts))
            self.hosts.append(name)
        for k in range(rng.choice([1, 2, 2, 3])):
            name = self.name("e")
            at = self.port()
            if chance(rng, 0.1) and self.switches:
                sw, _ = rng.choice(self.switches)
                lo = self.free[sw].pop(0) if self.free[sw] else 1
                hi = self.free[sw].pop(0) if self.free[sw] and chance(rng, 0.5) else lo
                at = f"{sw}:{lo}..{hi if not self.odd_one() else number(rng, 0, 9, 1.0)}"
            opts = []
            if k == 0 and not self.odd_one():
                opts.append("default")
            elif chance(rng, 0.9):
                nets = [
                    prefix4(rng, self.odd) if chance(rng, 0.8) else prefix6(rng, self.odd)
                    for _ in range(rng.choice([1, 1, 2]))
                ]
                if self.odd_one():
                    nets.append(self.typed("net"))
                opts.append("net " + ", ".join(nets))
            self.emit(f"edge {name} at {at} " + " ".join(opts))
            self.edges.append(name)
        if chance(rng, 0.1):
            name = self.name("bx")
            self.emit(f"box {name} at {self.port()} -> {self.port()}")
            self.boxes.append(name)

    def definitions(self) -> None:
        rng = self.rng
        for _ in range(rng.randint(0, 3)):
            kind = rng.choice(["addr", "net", "port", "mac"])
            name = self.name("s")
            value = self.typed(kind)
            if chance(rng, 0.2) and not value.startswith("{"):
                value = "{" + value + "}"
            self.emit(f"set {name} = {value}")
            self.sets[kind].append(name)
        for _ in range(rng.randint(0, 2)):
            name = self.name("c")
            self.emit(f"class {name} = {self.match()}")
            self.classes.append(name)

    def module(self) -> None:
        rng = self.rng
        name = self.name("m")
        mtype = rng.choice(TYPES) if not self.odd_one(0.3) else rng.choice(["firewal", "x", "tcp"])
        params = {
            "firewall": lambda: (
                [f"{rng.choice(['allow', 'deny'])}: {self.match()}"]
                + ([f"deny: {self.match()}"] if self.odd_one() else [])
            ),
            "classify": lambda: [f"l{k}: {self.match()}" for k in range(rng.randint(1, 3))],
            "monitor": lambda: [f"sink: {rng.choice(['true', 'false'])}"] if chance(rng, 0.5) else [],
            "ratelimit": lambda: [f"rate: {rate(rng, self.odd)}", f"burst: {size(rng, self.odd)}"],
            "nat": lambda: [f"to: {ipv4(rng, self.odd) if chance(rng, 0.8) else ipv6(rng)}"],
            "loadbalance": lambda: [
                f"vip: {ipv4(rng, self.odd)}",
                f"backends: {{{ipv4(rng, self.odd)}, {ipv4(rng, self.odd)}}}",
            ],
            "encrypt": lambda: [f"spi: {number(rng, 256, 70000, self.odd)}", f"key: {string(rng, self.odd)}"],
            "decrypt": lambda: [f"spi: {number(rng, 256, 70000, self.odd)}", f"key: {string(rng, self.odd)}"],
            "tunnel": lambda: [f"remote: {ipv4(rng, self.odd)}", f"local: {ipv4(rng, self.odd)}"],
            "ids": lambda: [f"rules: {string(rng, self.odd)}"],
            "dpi": lambda: [],
            "process": lambda: [f"command: {string(rng, self.odd)}"],
        }.get(mtype, lambda: [f"p: {self.typed('addr')}"])()
        if self.odd_one(0.5):
            params.append(f"{self.name('p')}: {self.typed('port')}")
        if mtype == "classify":
            self.labels[name] = [p.split(":")[0] for p in params]
        opts = []
        kind = None
        if chance(rng, 0.3) or mtype in ("ids", "dpi"):
            kind = rng.choice(KINDS) if mtype != "process" or self.odd_one() else "process"
            opts.append(f"kind {kind}")
        if chance(rng, 0.3):
            opts.append(f"cores {number(rng, 1, 2, self.odd)}")
        if chance(rng, 0.3):
            opts.append(f"memory {size(rng, self.odd) if self.odd else rng.choice(['256MiB', '1GiB'])}")
        if kind == "vm" or (mtype in ("ids", "dpi") and kind is None) or self.odd_one(0.5):
            opts.append(f"image {string(rng, self.odd)}")
        if chance(rng, 0.15):
            count = number(rng, 1, 4, self.odd)
            opts.append(f"replicas {count}")
            self.replicas[name] = count
        self.emit(f"module {name} = {mtype}({', '.join(params)}) " + " ".join(opts))
        if mtype == "monitor" and params == ["sink: true"]:
            self.sink_modules.append(name)
        else:
            self.modules[name] = mtype

    def use(self, depth: int) -> str:
        rng = self.rng
        m = rng.choice(list(self.modules))
        if chance(rng, 0.2):
            count = self.replicas.get(m) or number(rng, 1, 4, self.odd * 2)
            if self.odd_one():
                count = number(rng, 1, 4, 1.0)
            self.replicas[m] = count
            by = f" by {rng.choice(['src', 'dst', 'flow'])}" if chance(rng, 0.5) else ""
            return f"{m} * {count}{by}"
        if self.modules[m] in ("classify", "ids") and depth < self.pipe_depth and chance(rng, 0.5):
            labels = self.labels.get(m, ["alert"]) + ["else"]
            chosen = rng.sample(labels, rng.randint(1, len(labels)))
            if "else" in chosen:  # `else` goes last
                chosen = [c for c in chosen if c != "else"] + ["else"]
            return m + " { " + ", ".join(f"{lab}: {self.pipeline(depth + 1)}" for lab in chosen) + " }"
        return m

    def stage(self, depth: int) -> str:
        rng = self.rng
        r = rng.randrange(20)
        if self.boxes and r == 0:
            return rng.choice(self.boxes)
        if (r < 15 or depth >= self.pipe_depth) and self.modules:
            return self.use(depth)
        if r < 17 and depth < self.pipe_depth:
            arms = [f"{self.match(1)}: {self.pipeline(depth + 1)}" for _ in range(rng.randint(1, 2))]
            if chance(rng, 0.7):
                arms.append(f"else: {self.pipeline(depth + 1)}")
            return "case { " + ", ".join(arms) + " }"
        if r < 19:
            target = self.ref(self.sink_modules, "t") if self.sink_modules or self.odd_one() else "drop"
            return f"copy {percent(rng, self.odd)} to {target}"
        return "pass" if not self.odd_one() else "drop"

    def pipeline(self, depth: int = 0) -> str:
        rng = self.rng
        if self.odd_one(0.25):
            n = rng.choice([63, 64, 65, 200, 256])
            return " >> ".join([self.stage(self.pipe_depth)] * n)
        stages = [self.stage(depth) for _ in range(rng.choice([1, 1, 2, 3]))]
        if chance(rng, 0.05) or self.odd_one(0.3):
            stages.append(rng.choice(["drop", *self.sink_modules]))
        return " >> ".join(stages)

    def build(self) -> str:
        rng = self.rng
        self.emit(f"site {self.name('site')}")
        self.platform()
        self.definitions()
        if chance(self.rng, 0.5):
            name = self.name("tap")
            self.emit(f"module {name} = monitor(sink: true)")
            self.sink_modules.append(name)
        for _ in range(rng.randint(1, 4)):
            self.module()
        for _ in range(rng.randint(1, 5)):
            name = self.name("p")
            src = ""
            if chance(rng, 0.4):
                src = f" from {', '.join(rng.sample(self.edges, rng.randint(1, len(self.edges))))}"
            match = f" match {self.match()}" if chance(rng, 0.85) else ""
            action = "drop" if chance(rng, 0.1) or not self.modules else f"via {self.pipeline()}"
            serial = not re.search(r"[{]", action)  # `symmetric` takes no split (E0410)
            sym = " symmetric" if action != "drop" and (serial or self.odd_one()) and chance(rng, 0.2) else ""
            self.emit(f"policy {name}{src}{match} {action}{sym}")
        for verb, word in (("pin", "to"), ("avoid", "on")):
            if self.modules and self.hosts and chance(rng, 0.15):
                self.emit(f"{verb} {rng.choice(list(self.modules))} {word} {rng.choice(self.hosts)}")
        if chance(rng, 0.1):
            self.emit(f"placement {rng.choice(['spread', 'pack'])}")
        if chance(rng, 0.1):
            self.emit(f"default {rng.choice(['forward', 'drop'])}")
        if self.odd_one(0.3):  # a statement out of place or repeated
            i, j = rng.randrange(len(self.lines)), rng.randrange(len(self.lines))
            self.lines.insert(i, self.lines[j])
        return "\n".join(self.lines) + "\n"


def gen_site(rng: random.Random) -> str:
    return SiteGen(rng, odd=rng.choice([0.0, 0.0, 0.02, 0.05, 0.1, 0.3])).build()


def gen_deep(rng: random.Random) -> str:
    """Sites with deeply nested matches and pipelines (``--deep``): they
    measure the header-space engine more than they hunt tracebacks."""
    return SiteGen(rng, odd=rng.choice([0.0, 0.05]), deep=True).build()


# ---------------------------------------------------------------- grammar derivations


@lru_cache(maxsize=1)
def _grammar() -> tuple[dict[str, list[list[tuple[str, bool]]]], dict[str, str | None]]:
    """Rules (non-terminal -> expansions of (symbol, is_terminal)) and the
    literal text of each string terminal (None for pattern terminals)."""
    p = lark_parser()
    rules: dict[str, list[list[tuple[str, bool]]]] = {}
    for r in p.rules:
        rules.setdefault(r.origin.name, []).append([(s.name, s.is_term) for s in r.expansion])
    literals = {t.name: (t.pattern.value if t.pattern.type == "str" else None) for t in p.terminals}
    return rules, literals


@lru_cache(maxsize=1)
def _min_depth() -> dict[str, int]:
    """Shortest derivation depth of each non-terminal (to close off deep trees)."""
    rules, _ = _grammar()
    depth = {n: 10**9 for n in rules}
    changed = True
    while changed:
        changed = False
        for n, exps in rules.items():
            for e in exps:
                d = 1 + max((0 if t else depth[s] for s, t in e), default=0)
                if d < depth[n]:
                    depth[n], changed = d, True
    return depth


def terminal(rng: random.Random, name: str, names: list[str]) -> str:
    _, literals = _grammar()
    lit = literals.get(name)
    if lit is not None:
        return lit
    return {
        "NAME": lambda: rng.choice(names) if names and chance(rng, 0.8) else odd_name(rng),
        "INT": lambda: number(rng, 0, 100, 0.3),
        "SIZE": lambda: size(rng, 0.3),
        "RATE": lambda: rate(rng, 0.3),
        "PERCENT": lambda: percent(rng, 0.3),
        "IPV4": lambda: ipv4(rng),
        "IPV6": lambda: ipv6(rng),
        "PREFIX4": lambda: prefix4(rng),
        "PREFIX6": lambda: prefix6(rng),
        "MAC": lambda: mac(rng),
        "STRING": lambda: string(rng, 0.3),
        "OFVER": lambda: rng.choice(["1.3", "1.4", "1.5"]),
    }.get(name, lambda: "x")()


def derive(rng: random.Random, symbol: str, names: list[str], budget: int) -> list[str]:
    """A random sentence of ``symbol``; past ``budget`` levels it takes the shortest ways out."""
    rules, _ = _grammar()
    depth = _min_depth()
    out: list[str] = []
    stack: list[tuple[str, bool, int]] = [(symbol, False, 0)]
    while stack:
        sym, is_term, level = stack.pop()
        if is_term:
            out.append(terminal(rng, sym, names))
            continue
        exps = rules[sym]
        if level >= budget:
            best = min(1 + max((0 if t else depth[s] for s, t in e), default=0) for e in exps)
            exps = [e for e in exps if 1 + max((0 if t else depth[s] for s, t in e), default=0) == best]
        for s, t in reversed(rng.choice(exps)):
            stack.append((s, t, level + 1))
    return out


def gen_grammar(rng: random.Random) -> str:
    names = [f"n{k}" for k in range(rng.randint(1, 6))] + ["tcp", "out", "else"]
    statements = [["site", "s"]] + [
        derive(rng, "statement", names, rng.choice([4, 8, 12, 20])) for _ in range(rng.randint(1, 12))
    ]
    if chance(rng, 0.5):
        rng.shuffle(statements)
    sep = rng.choice([" ", "  ", "\t"])
    return "\n".join(sep.join(s) for s in statements) + "\n"


# ---------------------------------------------------------------- mutations

_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[A-Za-z_][A-Za-z0-9_-]*|[0-9][0-9A-Za-z.:/%]*|>>|->|\.\.|\s+|.')


@lru_cache(maxsize=1)
def example_texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in EXAMPLES]


def _mutate_tokens(rng: random.Random, text: str) -> str:
    toks = _TOKEN.findall(text)
    if not toks:
        return text
    words = [i for i, t in enumerate(toks) if not t.isspace()]
    i = rng.choice(words) if words else 0
    t = toks[i]
    op = rng.randrange(11)
    if op == 0:
        del toks[i]
    elif op == 1:
        toks.insert(i, t + " ")
    elif op == 2 and t[:1].isdigit():
        toks[i] = rng.choice(BOUNDARY_INTS) if not re.search(r"[.:]", t) else rng.choice([ipv4(rng), prefix4(rng)])
    elif op == 3 and t[:1].isalpha():
        toks[i] = odd_name(rng)
    elif op == 4 and t.startswith('"'):
        toks[i] = string(rng, 1.0)
    elif op == 5:
        j = rng.choice(words)
        toks[i], toks[j] = toks[j], toks[i]
    elif op == 6:
        toks.insert(i, rng.choice(ODD_CHARS + ["(", ")", "{", "}", ">>", "*", ",", ":", "not ", "\n"]))
    elif op == 7 and t in ("tcp", "udp", "ip", "ip6", "icmp", "arp"):
        n = rng.choice([10, 49, 50, 51, 100, 1000])
        toks[i] = "(" * n + t + ")" * n if chance(rng, 0.5) else "not " * n + t
    elif op == 8 and t == ">>":
        n = rng.choice([30, 62, 63, 64, 65, 128, 255, 256])
        nxt = next((toks[j] for j in range(i + 1, len(toks)) if not toks[j].isspace()), "pass")
        toks[i] = (" >> " + nxt) * n + " >>"
    elif op == 9 and t[:1].isdigit():
        toks[i] = rng.choice(["0", "1", "255", "256", "65536", "9" * 30]) + rng.choice(SIZE_UNITS + RATE_UNITS + ["%"])
    else:
        toks.insert(i, rng.choice(toks))
    return "".join(toks)


def _mutate_lines(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    op = rng.randrange(6)
    i = rng.randrange(len(lines))
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(rng.randrange(len(lines) + 1), lines[i])
    elif op == 2:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == 3:
        return text[: rng.randrange(len(text) + 1)]
    elif op == 4:  # the same statement many times, renamed
        m = re.match(r"\s*(policy|module|set|class|host|edge|switch)\s+(\S+)", lines[i])
        if m:
            n = rng.choice([2, 10, 300])
            lines[i + 1 : i + 1] = [lines[i].replace(m.group(2), f"{m.group(2)}{k}", 1) for k in range(n)]
    else:
        pos = rng.randrange(len(text) + 1)
        return text[:pos] + rng.choice(ODD_CHARS) + text[pos:]
    return "\n".join(lines)


def gen_mutant(rng: random.Random) -> str:
    text = rng.choice(example_texts()) if chance(rng, 0.5) else SiteGen(rng, odd=0.0).build()
    for _ in range(rng.choice([1, 1, 2, 3, 5])):
        text = _mutate_tokens(rng, text) if chance(rng, 0.7) else _mutate_lines(rng, text)
    return text


def gen_junk(rng: random.Random) -> bytes:
    r = rng.randrange(3)
    if r == 0:
        return rng.randbytes(rng.randint(0, 400))
    words = ["site", "policy", "match", "via", ">>", "{", "}", "(", ")", "*", "tcp", "host", "edge", "at", ":",
             "1", "module", "=", "drop", "copy", "5%", "to", "case", "else", ",", '"', "\n", "x", "10.0.0.0/8",
             "::"]  # fmt: skip
    text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 80)))
    data = text.encode()
    if r == 2:
        data = b"\xef\xbb\xbf" + data + rng.choice([b"\xff", b"\x00", b"\xc3", b"\xed\xa0\x80", b""])
    return data


GENERATORS: dict[str, Callable[[random.Random], str | bytes]] = {
    "site": gen_site,
    "grammar": gen_grammar,
    "mutant": gen_mutant,
    "junk": gen_junk,
    "deep": gen_deep,
}
WEIGHTS = {"site": 40, "grammar": 20, "mutant": 35, "junk": 5}


def generate(seed: int, index: int, deep: bool = False) -> tuple[str, str | bytes]:
    """The (generator, input) of input ``index`` of a run with ``seed``."""
    rng = random.Random(f"{seed}:{index}")
    kind = "deep" if deep else rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
    return kind, GENERATORS[kind](rng)
