# ipv6.fs - a dual-stack data-centre edge with IPv6 policies.
# Web traffic to the IPv6 server is firewalled and inspected in both directions; the IPv6-only
# LAN gets per-protocol treatment by the switch (DNS bypassing the resolver is counted), rogue
# router advertisements and stray IPv4 from it are dropped; unicast ICMPv6 is counted.
site ipv6

switch core dpid 0x6 ports 16 tcam 4000

host v6host at core:1 cores 6 memory 8GiB runs click, vm

edge transit at core:16 default
edge dmz6    at core:2  net 2001:db8:10::/48, 10.66.0.0/24
edge lan6    at core:3  net 2001:db8:20::/48

set websrv   = 2001:db8:10::80
set dmz4     = 10.66.0.0/24
set bogons6  = {2001:db8:dead::/48, 2001:db8:bad::/48}

class web6  = ip6 and tcp and dst host websrv and dst port {80, 443}
class ping6 = icmp6 and not (dst net ff00::/8 or src net fe80::/10)

module fw   = firewall(allow: tcp and dst port {80, 443} or icmp6, deny: src net bogons6)
module ids6 = ids(rules: "ipv6-web.rules")  kind vm  image "suricata.qcow2"
module cnt6 = monitor()

policy no_v4       from lan6     match ip  drop
policy ra_guard    from lan6     match icmp6 and src net fe80::/10 and ether dst 33:33:00:00:00:01  drop
policy web6_in     from transit  match web6  via fw >> ids6  symmetric
policy dmz4_in     from transit  match ip and tcp and dst net dmz4  via fw
policy lan6_out    from lan6     match ip6 and (tcp or udp)
                   via case { udp and not dst host 2001:db8:10::53 and dst port 53: cnt6, tcp and dst port 25: drop, else: pass }
policy count_ping6 match ping6   via cnt6
