"""`fsc agent`: the control module of one module host (docs/platform.md).

The agent pulls: every second it posts a heartbeat (the host's load, every
instance's state, packets and restarts) to the controller and gets back the
full desired set of instances, which it reconciles to.  Pieces:

* :mod:`.main`       ``run_agent``, what `fsc agent` calls
* :mod:`.reconcile`  desired vs running -> Stop / Start / Restart / GiveUp (pure)
* :mod:`.agent`      the loop: poll, heartbeat, act; keeps going without a controller
* :mod:`.runners`    one per kind: ``click`` (the host's Click configuration of a
  generation), ``process`` (supervised program), ``vm`` (libvirt, or in the lab a
  network namespace running the module type's reference behaviour)
* :mod:`.reference`, :mod:`.behaviour`, :mod:`.frames`  the reference behaviour of
  a module on real frames (AF_PACKET, tag in, same tag and output index in PCP out)
* :mod:`.netdev`     veth/tap devices and namespaces (iproute2)
* :mod:`.hostload`   /proc load figures

Moving an instance between hosts while it runs (not driven yet by the
controller; the interface is here): ``Runner.export_state(handle)`` on the old
host, ``Runner.start(spec, state=...)`` on the new one while the old still
runs, the controller re-steers to the new host, then the old is stopped.
"""

# Kept import-free: ``python -m backends.platform.agent.reference`` starts quickly.
