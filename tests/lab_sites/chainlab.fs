# chainlab.fs - Click modules in series, a split and replicas on two module
# hosts, for the lab's end-to-end tests with real packets.
site chainlab

switch sw dpid 0x51 ports 16 ovs

host m1 at sw:1 cores 4 memory 4GiB runs click
host m2 at sw:2 cores 4 memory 4GiB runs click

edge wan at sw:16 default
edge lan at sw:3 net 10.60.0.0/24

module fw   = firewall(deny: udp and dst port 6666)
module cnt  = monitor()
module pre  = classify(web: tcp and dst port 80)
module deep = monitor()
module rep  = monitor() replicas 2

pin fw to m1
pin cnt to m2

policy guarded from wan match udp and dst port {6001, 6666} via fw >> cnt
policy web     from wan match tcp and dst port {80, 81}    via pre { web: deep, else: pass }
policy shared  from wan match udp and dst port 7001 via rep symmetric
