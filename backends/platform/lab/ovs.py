"""A private Open vSwitch instance for tests and demos (userspace datapath).

    with PrivateOvs(tmp_path / "ovs") as ovs:
        ovs.add_bridge("s1", dpid=1, ports=[1, 2, 3])
        ovs.add_flows("s1", Path("s1.flows"), groups_file=Path("s1.groups"))
        r = ovs.trace("s1", "in_port=1,tcp,tp_dst=80")
        assert r.output_ports == [2]

Layout and behaviour (facts checked with Debian's OVS 3.1, see
docs/platform-notes.md):

* Everything lives in the work directory ``D``: ``conf.db``, the database
  socket ``D/db.sock``, the control sockets ``D/ovsdb-server.ctl`` and
  ``D/ovs-vswitchd.ctl``, pid files, logs (``*.log``) and one OpenFlow
  management socket per bridge, ``D/<bridge>.mgmt``. ``OVS_RUNDIR``,
  ``OVS_LOGDIR``, ``OVS_DBDIR`` and ``OVS_SYSCONFDIR`` point at ``D`` for every
  OVS command, so nothing touches a system OVS.
* ``ovsdb-server`` runs in the caller's network namespace (it only serves a
  unix socket); ``ovs-vswitchd`` runs under ``ip netns exec NS`` in a namespace
  of its own: the userspace datapath creates a tap device ``ovs-netdev``, so
  two vswitchd in one namespace clash ("failed to open datapath"). The unix
  sockets work from any namespace.
* Bridges: ``datapath_type=netdev``, OpenFlow 1.3-1.5, ``fail_mode=secure``
  (no controller, no NORMAL fallback: only the flows you install act), fixed
  ``datapath-id``.
* Ports are ``type=internal`` interfaces with ``ofport_request=N``. With the
  userspace datapath each internal port is a tap device inside ``NS`` (named
  ``<bridge>-p<N>`` when that fits in 15 characters); they are set up (link
  UP), so they are LIVE for OpenFlow (fast-failover groups) and can carry real
  packets (``ip netns exec NS ...``). ``type=dummy`` would need vswitchd's
  ``--enable-dummy`` testing switch; veth ends moved into ``NS`` can be
  attached with :meth:`PrivateOvs.add_port` ``(name=...)``.
* :meth:`PrivateOvs.stop` stops both daemons (``exit`` over the control
  socket, then SIGTERM/SIGKILL by pid), deletes the namespace (and so every
  tap) and removes sockets and pid files. ``conf.db`` and the logs stay in
  ``D`` for post-mortems; the caller owns ``D``.

Finding the binaries, :class:`OvsError` and the process checks are in
:mod:`backends.platform.lab.ovs_tools`; :class:`TraceResult` (``ofproto/trace``
parsing) is in :mod:`backends.platform.lab.ovs_trace`. Both are re-exported
here, where callers import them.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from backends.platform.lab.ovs_tools import (
    OVS_BINARIES,
    OvsError,
    _pid_alive,
    _pid_is,
    _search_path,
    _which,
    ovs_available,
)
from backends.platform.lab.ovs_trace import OFPP_LOCAL, TraceResult
from backends.platform.wait import WaitTimeout, wait_until

__all__ = ["OFPP_LOCAL", "OvsError", "PrivateOvs", "TraceResult", "ovs_available"]

#: Highest OpenFlow port number usable for a physical/internal port.
OFPP_MAX = 0xFFFFFF00

_IFNAMSIZ = 15  # longest Linux interface name
_CMD_TIMEOUT = 60.0

_counter = itertools.count()
_live: set[PrivateOvs] = set()


class PrivateOvs:
    """A private ovsdb-server + ovs-vswitchd in ``workdir``, vswitchd in ``netns``.

    Use as a context manager (``with PrivateOvs(d) as ovs:``) or call
    :meth:`start` / :meth:`stop`. Needs root (network namespaces).
    """

    def __init__(self, workdir: Path, netns: str | None = None) -> None:
        self.workdir = Path(workdir).absolute()
        self._auto_netns = netns is None
        self.netns = netns or f"fsc-ovs-{os.getpid()}-{next(_counter)}"
        self._started = False
        self._netns_created = False
        self._pids: dict[str, int] = {}
        self._bin: dict[str, str] = {}

    # -- paths -------------------------------------------------------------
    @property
    def db_sock(self) -> Path:
        return self.workdir / "db.sock"

    @property
    def vswitchd_ctl(self) -> Path:
        return self.workdir / "ovs-vswitchd.ctl"

    @property
    def ovsdb_ctl(self) -> Path:
        return self.workdir / "ovsdb-server.ctl"

    def mgmt_socket(self, bridge: str) -> Path:
        return self.workdir / f"{bridge}.mgmt"

    @staticmethod
    def port_name(bridge: str, ofport: int) -> str:
        """Interface name of the internal port ``ofport`` of ``bridge``."""
        name = f"{bridge}-p{ofport}"
        if len(name) > _IFNAMSIZ:
            name = f"p{zlib.crc32(bridge.encode()) & 0xFFFFFF:06x}-{ofport}"
        return name

    # -- lifecycle ---------------------------------------------------------
    def __enter__(self) -> PrivateOvs:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"PrivateOvs({str(self.workdir)!r}, netns={self.netns!r}, {state})"

    def start(self) -> None:
        if self._started:
            return
        reason = ovs_available()
        if reason:
            raise OvsError(f"Open vSwitch is not usable: {reason}")
        if os.geteuid() != 0:
            raise OvsError("PrivateOvs needs root (it creates a network namespace)")
        self._bin = {b: _which(b) or b for b in (*OVS_BINARIES, "ip")}
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        for pidfile in ("ovs-vswitchd.pid", "ovsdb-server.pid"):
            pid = self._read_pid(d / pidfile)
            if pid and _pid_alive(pid) and _pid_is(pid, pidfile[: -len(".pid")]):
                raise OvsError(f"{d} is in use by a running {pidfile[:-4]} (pid {pid})")
        self._started = True  # from here on, stop() cleans up whatever exists
        _live.add(self)
        try:
            if self.netns in self._netns_list():
                if not self._auto_netns:
                    raise OvsError(f"network namespace {self.netns!r} already exists")
                self._run([self._bin["ip"], "netns", "del", self.netns])  # stale, same pid
            self._run([self._bin["ip"], "netns", "add", self.netns])
            self._netns_created = True
            self._run([self._bin["ip"], "-n", self.netns, "link", "set", "dev", "lo", "up"])
            self._clean_workdir(also_db=True)
            self._run([self._bin["ovsdb-tool"], "create", str(d / "conf.db")])
            self._run(
                [
                    self._bin["ovsdb-server"],
                    str(d / "conf.db"),
                    f"--remote=punix:{self.db_sock}",
                    f"--unixctl={self.ovsdb_ctl}",
                    f"--pidfile={d / 'ovsdb-server.pid'}",
                    f"--log-file={d / 'ovsdb-server.log'}",
                    "--detach",
                    "--no-chdir",
                ],
                log=d / "ovsdb-server.log",
            )
            self._pids["ovsdb-server"] = self._read_pid(d / "ovsdb-server.pid") or 0
            self.vsctl("--no-wait", "init")
            self._run(
                [
                    self._bin["ip"],
                    "netns",
                    "exec",
                    self.netns,
                    self._bin["ovs-vswitchd"],
                    f"unix:{self.db_sock}",
                    f"--unixctl={self.vswitchd_ctl}",
                    f"--pidfile={d / 'ovs-vswitchd.pid'}",
                    f"--log-file={d / 'ovs-vswitchd.log'}",
                    "--detach",
                    "--no-chdir",
                ],
                log=d / "ovs-vswitchd.log",
            )
            self._pids["ovs-vswitchd"] = self._read_pid(d / "ovs-vswitchd.pid") or 0
            if not self.vswitchd_ctl.exists():
                raise OvsError(
                    f"ovs-vswitchd started but {self.vswitchd_ctl} is missing" + self._log_tail("ovs-vswitchd.log")
                )
        except BaseException:
            self.stop()
            raise

    def keep_running(self) -> None:
        """Let the daemons outlive this process (no stop at interpreter exit).

        For a lab that `fsc lab up` leaves behind; `fsc lab down` stops it
        with :meth:`adopt` + :meth:`stop`.
        """
        _live.discard(self)

    @classmethod
    def adopt(cls, workdir: Path, netns: str) -> PrivateOvs:
        """An instance for daemons started earlier (maybe by another process) in
        ``workdir`` with vswitchd in ``netns``; :meth:`stop` then stops them and
        deletes the namespace."""
        ovs = cls(workdir, netns)
        ovs._bin = {b: _which(b) or b for b in (*OVS_BINARIES, "ip")}
        ovs._started = True
        ovs._netns_created = True
        for daemon in ("ovs-vswitchd", "ovsdb-server"):
            pid = ovs._read_pid(ovs.workdir / f"{daemon}.pid")
            if pid and _pid_alive(pid) and _pid_is(pid, daemon):
                ovs._pids[daemon] = pid
        return ovs

    def stop(self) -> None:
        """Stop both daemons, delete the namespace; safe to call twice."""
        if not self._started:
            return
        errors: list[str] = []
        for daemon, ctl in (("ovs-vswitchd", self.vswitchd_ctl), ("ovsdb-server", self.ovsdb_ctl)):
            pid = self._pids.get(daemon) or self._read_pid(self.workdir / f"{daemon}.pid")
            try:
                self._stop_daemon(daemon, ctl, pid)
            except OvsError as e:
                errors.append(str(e))
        if self._netns_created:
            try:
                if self.netns in self._netns_list():
                    self._run([self._bin["ip"], "netns", "del", self.netns])
                self._netns_created = False
            except OvsError as e:
                errors.append(str(e))
        self._clean_workdir(also_db=False)
        self._pids.clear()
        self._started = False
        _live.discard(self)
        if errors:
            raise OvsError("stopping the private OVS: " + "; ".join(errors))

    def _stop_daemon(self, daemon: str, ctl: Path, pid: int | None) -> None:
        if ctl.exists():
            # graceful: vswitchd removes its datapath and ports on `exit`
            self._run([self._bin["ovs-appctl"], "-t", str(ctl), "-T", "10", "exit"], check=False, timeout=15)
        if not pid:
            return

        def gone() -> bool:
            return not (_pid_alive(pid) and _pid_is(pid, daemon))

        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                if gone():
                    return
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    return
            try:
                wait_until(gone, 5, f"{daemon} (pid {pid}) to end")
                return
            except WaitTimeout:
                continue  # the next, stronger signal
        raise OvsError(f"{daemon} (pid {pid}) does not die")

    def _clean_workdir(self, *, also_db: bool) -> None:
        if not self.workdir.is_dir():
            return
        patterns = ["*.sock", "*.ctl", "*.mgmt", "*.snoop", "*.pid", ".conf.db.~lock~"]
        if also_db:
            patterns += ["conf.db", "*.log"]
        for pattern in patterns:
            for p in self.workdir.glob(pattern):
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass

    # -- commands ----------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        d = str(self.workdir)
        env.update(OVS_RUNDIR=d, OVS_LOGDIR=d, OVS_DBDIR=d, OVS_SYSCONFDIR=d, PATH=_search_path())
        return env

    def _run(
        self,
        cmd: Sequence[str],
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float = _CMD_TIMEOUT,
        log: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        try:
            cp = subprocess.run(
                list(cmd), input=input, capture_output=True, text=True, env=self._env(), timeout=timeout
            )
        except subprocess.TimeoutExpired as e:
            raise OvsError(f"`{shlex.join(cmd)}` timed out after {timeout:.0f}s", cmd=cmd) from e
        except OSError as e:
            raise OvsError(f"`{shlex.join(cmd)}` could not run: {e}", cmd=cmd) from e
        if check and cp.returncode != 0:
            msg = f"`{shlex.join(cmd)}` failed (exit {cp.returncode}): {cp.stderr.strip() or cp.stdout.strip()}"
            if log is not None:
                msg += self._log_tail(log.name)
            raise OvsError(msg, cmd=cmd, returncode=cp.returncode, stdout=cp.stdout, stderr=cp.stderr)
        return cp

    def _log_tail(self, name: str, n: int = 15) -> str:
        try:
            lines = (self.workdir / name).read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return ""
        return f"\n--- last lines of {self.workdir / name} ---\n" + "\n".join(lines)

    @staticmethod
    def _read_pid(path: Path) -> int | None:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def _netns_list(self) -> set[str]:
        out = self._run([self._bin.get("ip") or "ip", "netns", "list"]).stdout
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    def _require_started(self) -> None:
        if not self._started:
            raise OvsError(f"{self!r} is not started")

    def vsctl(self, *args: str) -> str:
        """Run ovs-vsctl against this instance's database; returns stdout."""
        self._require_started()
        cmd = [self._bin["ovs-vsctl"], f"--db=unix:{self.db_sock}", "--timeout=30", *map(str, args)]
        return self._run(cmd).stdout.rstrip("\n")

    def appctl(self, *args: str) -> str:
        """Run ovs-appctl against this instance's ovs-vswitchd; returns stdout."""
        self._require_started()
        cmd = [self._bin["ovs-appctl"], "-t", str(self.vswitchd_ctl), "-T", "30", *map(str, args)]
        return self._run(cmd).stdout

    def netns_exec(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside the instance's network namespace."""
        self._require_started()
        return self._run([self._bin["ip"], "netns", "exec", self.netns, *map(str, args)], check=check)

    def add_bridge(self, name: str, dpid: int, ports: Iterable[int] = ()) -> None:
        """Add a secure-fail-mode netdev bridge with internal ports numbered ``ports``."""
        self._require_started()
        if not name or len(name) > _IFNAMSIZ or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise OvsError(f"bad bridge name {name!r} (1-{_IFNAMSIZ} chars of [A-Za-z0-9_.-])")
        if not 0 <= dpid < 2**64:
            raise OvsError(f"datapath id {dpid} out of range")
        ports = list(ports)
        for n in ports:
            self._check_ofport(n)
        if len(set(ports)) != len(ports):
            raise OvsError(f"duplicate port numbers in {ports}")
        cmd = [
            "--", "add-br", name,
            "--", "set", "bridge", name,
            "datapath_type=netdev",
            "protocols=OpenFlow13,OpenFlow14,OpenFlow15",
            f"other_config:datapath-id={dpid:016x}",
            "fail_mode=secure",
        ]  # fmt: skip
        for n in ports:
            pn = self.port_name(name, n)
            cmd += ["--", "add-port", name, pn, "--", "set", "interface", pn, "type=internal", f"ofport_request={n}"]
        self.vsctl(*cmd)
        self._check_ofports({self.port_name(name, n): n for n in ports})
        self._links_up([name, *(self.port_name(name, n) for n in ports)])

    def add_port(self, bridge: str, ofport: int, name: str | None = None) -> str:
        """Add one port numbered ``ofport``; returns its interface name.

        Without ``name``: a new internal port (tap in the namespace). With
        ``name``: an existing interface in the namespace (e.g. a veth end
        moved there with ``ip link set X netns NS``) attached as a system port.
        """
        self._check_ofport(ofport)
        internal = name is None
        pn = name or self.port_name(bridge, ofport)
        cmd = ["--", "add-port", bridge, pn, "--", "set", "interface", pn, f"ofport_request={ofport}"]
        if internal:
            cmd.append("type=internal")
        self.vsctl(*cmd)
        self._check_ofports({pn: ofport})
        self._links_up([pn])
        return pn

    @staticmethod
    def _check_ofport(n: int) -> None:
        if not isinstance(n, int) or not 1 <= n < OFPP_MAX:
            raise OvsError(f"OpenFlow port number {n!r} out of range 1..{OFPP_MAX - 1}")

    def _check_ofports(self, want: dict[str, int]) -> None:
        if not want:
            return
        out = self.vsctl("--format=json", "--columns=name,ofport,error", "list", "Interface")
        table = json.loads(out)
        got = {row[0]: (row[1], row[2]) for row in table["data"]}
        bad = []
        for pn, n in want.items():
            ofport, err = got.get(pn, (None, None))
            if ofport != n:
                err_s = err if isinstance(err, str) else ""
                bad.append(f"{pn}: ofport {ofport} (wanted {n}) {err_s}".rstrip())
        if bad:
            raise OvsError(
                "ports did not get their OpenFlow numbers: " + "; ".join(bad) + self._log_tail("ovs-vswitchd.log")
            )

    def _links_up(self, ifnames: Iterable[str]) -> None:
        batch = "".join(f"link set dev {n} up\n" for n in ifnames)
        if batch:
            self._run([self._bin["ip"], "-n", self.netns, "-batch", "-"], input=batch)

    def ofctl(self, *args: str, bridge: str, protocol: str = "OpenFlow13") -> str:
        """``ovs-ofctl -O protocol [options] COMMAND <bridge mgmt socket> [ARGS]``.

        ``args`` are leading options (``--bundle``, ``--no-stats``...), then the
        command, then its arguments after the switch, e.g.
        ``ofctl("--bundle", "add-flows", "f.txt", bridge="s1")``.
        """
        self._require_started()
        args_s = [str(a) for a in args]
        opts = list(itertools.takewhile(lambda a: a.startswith("-"), args_s))
        rest = args_s[len(opts) :]
        if not rest:
            raise OvsError("ofctl: no command given")
        mgmt = self.mgmt_socket(bridge)
        if not mgmt.exists():
            raise OvsError(f"no bridge {bridge!r} in {self!r} ({mgmt} missing)")
        cmd = [self._bin["ovs-ofctl"], "-O", protocol, *opts, rest[0], str(mgmt), *rest[1:]]
        return self._run(cmd).stdout

    def add_flows(
        self, bridge: str, flows_file: Path, groups_file: Path | None = None, *, protocol: str = "OpenFlow13"
    ) -> None:
        """Load groups (first, if given) then flows, each as one atomic bundle."""
        if groups_file is not None:
            self.ofctl("--bundle", "add-groups", str(groups_file), bridge=bridge, protocol=protocol)
        self.ofctl("--bundle", "add-flows", str(flows_file), bridge=bridge, protocol=protocol)

    def dump_flows(self, bridge: str, *, table: int | None = None) -> list[str]:
        """Installed flows, one ovs-ofctl line each, without statistics."""
        args = ["--no-stats", "dump-flows"] + ([f"table={table}"] if table is not None else [])
        return _strip_reply(self.ofctl(*args, bridge=bridge))

    def dump_groups(self, bridge: str, *, protocol: str = "OpenFlow13") -> list[str]:
        return _strip_reply(self.ofctl("dump-groups", bridge=bridge, protocol=protocol))

    def trace(self, bridge: str, flow: str) -> TraceResult:
        """``ofproto/trace BRIDGE FLOW`` (e.g. ``in_port=1,tcp,tp_dst=80``), parsed."""
        return TraceResult.parse(self.appctl("ofproto/trace", bridge, flow))


def _strip_reply(out: str) -> list[str]:
    return [
        line.strip()
        for line in out.splitlines()
        if line.strip() and not re.match(r"(OFPST|NXST|OFPT)_\w+ reply", line.strip())
    ]


@atexit.register
def _stop_all() -> None:
    for ovs in list(_live):
        try:
            ovs.stop()
        except Exception:  # best effort at interpreter exit
            pass
