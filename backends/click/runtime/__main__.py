"""``python -m backends.click.runtime CONFIG.click [options]``: run a Click
configuration on the host's network devices until SIGTERM.

Options:
  --stats-file F        write statistics as JSON to F: once at start (the
                        file appearing means the devices are open and the
                        router runs), every --stats-interval seconds, on
                        SIGUSR1 and at exit.  Without it SIGUSR1 prints them
                        on stderr.
  --stats-interval S    seconds between writes (default 5).
  --missing-devices M   "error" (default): a device that does not exist stops
                        the start; "wait": the runtime starts and opens it
                        when it appears (frames sent to it meanwhile count as
                        tx_errors).
  --device NAME=IFNAME  use interface IFNAME for the configuration's device
                        NAME (repeatable; e.g. --device eth0=mh1-eth0).
  --check               load the configuration, print its elements and
                        devices, and exit.
  --seed N              seed for random choices (IPsec IVs, NAT ports).

Exit status: 0 stopped by a signal, 1 the configuration does not load, 2
usage, 3 a device could not be opened (missing, or no permission: AF_PACKET
needs CAP_NET_RAW).

The statistics (JSON, written atomically)::

    {"config": "mh1.click", "pid": 1234, "time": 1764172800.1, "started": ..., "uptime": 12.3,
     "devices":   {"eth0": {"rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "tx_errors",
                            "tx_blocked", "rx_ignored_outgoing", "open"}, "fs-ids.1": {...}},
     "compounds": {"i_fw": {"class": "I_fw", "packets_in": 10, "packets_out": 7,
                            "inputs": {"0": 9, "1": 1}, "outputs": {"0": 7}}, ...},
     "elements":  {"i_mon/count": {"class": "Counter", "count": 7, "byte_count": 980, "rate": 0.5},
                   "to_switch": {"class": "Queue", "length": 0, "highwater_length": 3, "capacity": 1000},
                   "i_fw/drop": {"class": "Discard", "count": 3}, ...}}

``compounds`` has one entry per compound element: in an fsc host
configuration, ``i_NAME`` is the module instance NAME (``i_ids_1`` is
``ids#1``), so ``packets_in`` / ``packets_out`` are the packets per instance.
"""

from __future__ import annotations

import argparse
import sys

from backends.click.runtime.netio import SocketTransport, serve
from backends.click.runtime.router import ClickLoadError, Router


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m backends.click.runtime", description="Run an fsc Click configuration on AF_PACKET sockets."
    )
    ap.add_argument("config")
    ap.add_argument("--stats-file")
    ap.add_argument("--stats-interval", type=float, default=5.0)
    ap.add_argument("--missing-devices", choices=("error", "wait"), default="error")
    ap.add_argument("--device", action="append", default=[], metavar="NAME=IFNAME")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--seed", type=int)
    args = ap.parse_args(argv)
    try:
        with open(args.config, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        print(f"{args.config}: {e.strerror}", file=sys.stderr)
        return 1
    rename = {}
    for d in args.device:
        name, sep, ifname = d.partition("=")
        if not sep or not name or not ifname:
            ap.error(f"--device {d!r}: expected NAME=IFNAME")
        rename[name] = ifname
    transport = SocketTransport(args.missing_devices, rename)
    try:
        router = Router(text, args.config, transport=transport, seed=args.seed)
    except ClickLoadError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return 1
    if args.check:
        for name, el in sorted(router.elements.items()):
            print(f"{name} :: {el.class_name}")
        print("devices: " + ", ".join(router.devices))
        return 0
    promisc = {d: False for d in router.devices}
    for dev, els in router.sources.items():
        promisc[dev] = any(getattr(e, "promisc", False) for e in els)
    try:
        missing = transport.open_all(promisc)
    except PermissionError as e:  # pragma: no cover - needs an unprivileged run
        print(f"cannot open AF_PACKET sockets: {e} (needs CAP_NET_RAW)", file=sys.stderr)
        return 3
    except OSError as e:
        print(str(e), file=sys.stderr)
        return 3
    for dev in missing:
        print(f"warning: device {dev} does not exist yet; waiting for it", file=sys.stderr)
    try:
        return serve(router, transport, args.stats_file, args.stats_interval)
    finally:
        transport.close()


if __name__ == "__main__":
    raise SystemExit(main())
