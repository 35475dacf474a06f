# scalelab.fs - rebalancing by measured load and consolidation in the lab
# (tests/test_rebalance_lab.py): `cnt` may have 1 or 2 replicas; the
# platform adds the second when the first is busy, and consolidation packs
# both on one host and powers the other off (a stopped namespace).
site scalelab

switch sw dpid 0x84 ports 16 ovs

host h1 at sw:1 cores 4 memory 4GiB runs click
host h2 at sw:2 cores 4 memory 4GiB runs click

edge wan at sw:16 default
edge lan at sw:15 net 10.91.0.0/24

module cnt = monitor() replicas 1..2

policy count from wan match udp or tcp via cnt symmetric
