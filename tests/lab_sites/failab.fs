# failab.fs - a host fails (or is drained) under traffic: the tests of live
# operation (tests/test_failover_lab.py) and benchmarks/failover.py.
# `web` is a symmetric chain through a pinned firewall and two IDS replicas;
# `steady` uses only the firewall's host, `count` only h2's monitor; h3 is the spare.
site failab

switch sw dpid 0x81 ports 16 ovs

host h1 at sw:1 cores 4 memory 4GiB runs click, vm
host h2 at sw:2 cores 4 memory 4GiB runs click, vm
host h3 at sw:3 cores 4 memory 4GiB runs click, vm spare

edge wan at sw:16 default
edge lan at sw:15 net 10.90.0.0/24

module fw  = firewall(deny: udp and dst port 6666)
module ids = ids(rules: "lab.rules") kind vm replicas 2 image "ids.qcow2"
module cnt = monitor()

pin fw to h1

policy web    from wan match tcp and dst port 8080 via fw >> ids symmetric
policy steady from wan match udp and dst port 5001 via fw
policy count  from wan match udp and dst port 5002 via cnt
