# fflab2.fs - data-plane fast failover across a link (tests/test_lab_fast_failover.py): two
# replicas of a monitor on two hosts behind two switches. When h2's switch link goes down,
# s2's fast-failover group re-tags h2's flows for the replica on h1 and sends them back over
# the link, marked as failed over once; s1 hands them to h1 before the controller hears of anything.
site fflab2

switch s1 dpid 0x84 ports 16 ovs
switch s2 dpid 0x85 ports 16 ovs
link s1:14 s2:14

host h1 at s1:1 cores 4 memory 4GiB runs click
host h2 at s2:1 cores 4 memory 4GiB runs click

edge wan at s1:16 default
edge lan at s2:15 net 10.92.0.0/24

module mon = monitor() replicas 2

policy probe from wan match udp and dst port 5004 via mon
