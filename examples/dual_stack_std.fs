# dual_stack_std.fs - a dual-stack provider edge on two standard OpenFlow switches (no `ovs`).
# The upstream (default) edge spans a port on each switch; one customer is IPv6-only, one is
# dual-stack. Inbound IPv6 is inspected by IDS replicas chosen by source address in both
# directions, with a copy of some flows to a probe after them; mail to the dual-stack customer
# is firewalled by a weighted pair; outbound traffic except a few ports is rate-limited.
# Without `ovs` the switches get only standard OpenFlow 1.3 (transport ports never masked).
site dual_stack_std

switch core  dpid 0x70 ports 24 tcam 6000
switch cust  dpid 0x71 ports 24 tcam 6000
link core:24 cust:24

host hc at core:1 cores 16 memory 32GiB
host hu at cust:1 cores 16 memory 32GiB

edge upstream at core:20, cust:20 default
edge v6only   at cust:10 net 2001:db8:60::/48
edge dual     at cust:11 net 2001:db8:61::/48, 198.51.100.0/25

module ids   = ids(rules: "edge.rules") kind vm image "suricata.qcow2"
module probe = monitor(sink: true)
module fw    = firewall(allow: tcp and dst port {25, 587})
module lim   = ratelimit(rate: 200Mbps, burst: 64KiB)

policy v6_in   from upstream match ip6 and (dst net 2001:db8:60::/48 or dst net 2001:db8:61::/48)
               via ids * 2 by src >> copy 10% to probe  symmetric
policy mail_in from upstream match tcp and dst net 198.51.100.0/25 and dst port {25, 587}
               via fw * 2 weights 3, 1  symmetric
policy out     from v6only, dual match (tcp or udp) and not dst port {53, 123, 8000..8003}
               via case { udp: lim, else: pass }
