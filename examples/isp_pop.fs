# isp_pop.fs - an ISP point of presence: one switch, transit on two ports, customers with IPv4
# and IPv6 space. DDoS targets are sent through the existing scrubber and a rate limiter; the
# IPv6 customer gets a replicated firewall chain, sampled to a probe; IPv4 web traffic is
# mirrored in part to the probe and inspected by four IDS replicas, replies included (both
# symmetric); UDP is split by port in the switch.
site isp_pop

switch pop dpid 0x100 ports 32 tcam 8000 ovs

host svc1 at pop:1 cores 32 memory 64GiB
host svc2 at pop:2 cores 32 memory 64GiB
host svc3 at pop:3 cores 32 memory 64GiB spare

edge transit at pop:30, pop:31  default
edge cust_a  at pop:10  net 198.51.100.0/22, 2001:db8:a000::/48
edge cust_b  at pop:11  net 203.0.112.0/22

box scrubber at pop:20 -> pop:21

set ddos_targets = {198.51.100.7, 198.51.100.9, 203.0.113.50}

module rl    = ratelimit(rate: 1Gbps, burst: 256KiB)
module fw6   = firewall(deny: src net 2001:db8:bad::/48 or tcp and dst port {23, 445})
module cnt6  = monitor()
module probe = monitor(sink: true)
module ids   = ids(rules: "web.rules") kind vm image "suricata.qcow2"
module dns   = monitor()
module voip  = ratelimit(rate: 100Mbps, burst: 64KiB)

policy ddos   from transit  match dst host ddos_targets  via scrubber >> rl
policy v6_fw  from transit  match ip6 and dst net 2001:db8:a000::/48
              via copy 5% to probe >> fw6 * 2 >> cnt6 symmetric
policy web    from transit  match ip and tcp and dst port {80, 443} and not dst host ddos_targets
              via copy 10% to probe >> ids * 4 by flow symmetric
policy udp_in from transit  match ip and udp and not dst net 198.51.100.0/22 and not dst host ddos_targets
              via case { dst port 53: dns, dst port 5060..5061: voip, else: pass }
