# updlab_v2.fs - updlab_v1.fs changed: the firewall also denies port 6001 and
# udp to port 5002 now goes through the box; policy `steady` is untouched.
site updlab

switch sw dpid 0x61 ports 16 ovs

host m1 at sw:1 cores 4 memory 4GiB runs click
host m2 at sw:2 cores 4 memory 4GiB runs click

edge wan at sw:16 default
edge lan at sw:3 net 10.70.0.0/24

box hair at sw:10 -> sw:11

module cnt = monitor()
module fw  = firewall(deny: udp and dst port {6001, 6666})

pin cnt to m1
pin fw to m2

policy steady from wan match udp and dst port 5001 via cnt
policy guard  from wan match udp and dst port {6001, 6666} via fw
policy extra  from wan match udp and dst port 5002 via hair
