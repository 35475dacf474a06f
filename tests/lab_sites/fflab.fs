# fflab.fs - data-plane fast failover under traffic (tests/test_lab_fast_failover.py,
# benchmarks/failover.py): two replicas of a monitor on two hosts of one switch; when
# one host's switch link goes down, the switch's fast-failover group sends its flows
# to the other replica before the controller hears of anything.
site fflab

switch sw dpid 0x83 ports 16 ovs

host h1 at sw:1 cores 4 memory 4GiB runs click
host h2 at sw:2 cores 4 memory 4GiB runs click

edge wan at sw:16 default
edge lan at sw:15 net 10.91.0.0/24

module mon = monitor() replicas 2

policy probe from wan match udp and dst port 5003 via mon
