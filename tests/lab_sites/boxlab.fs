# boxlab.fs - the lab's smallest site: no module host runs anything, a box
# (a namespace that sends frames back hairpin) sits on tcp port 80 traffic.
site boxlab

switch sw dpid 0x42 ports 16 ovs

host mh at sw:1 cores 2 memory 2GiB runs click

edge wan at sw:16 default
edge lan at sw:2 net 10.40.0.0/24

box hair at sw:10 -> sw:11

policy web from wan match tcp and dst port 80 via hair
