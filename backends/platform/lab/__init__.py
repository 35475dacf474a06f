"""backends.platform.lab: run the generated configuration on real software on this machine.

`backends.platform.lab.ovs.PrivateOvs` runs a private Open vSwitch (userspace datapath)
in a directory of its own and a network namespace of its own.
"""

from backends.platform.lab.ovs import OvsError, PrivateOvs, TraceResult, ovs_available

__all__ = ["OvsError", "PrivateOvs", "TraceResult", "ovs_available"]
