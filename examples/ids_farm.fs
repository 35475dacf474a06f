# ids_farm.fs - a server farm behind a load-balanced, parallel intrusion detection farm.
# A Click firewall sits in front of four Suricata VMs; flows are hashed symmetrically so both
# directions of a connection meet the same IDS. DNS queries are rate-limited per client by two
# limiter replicas hashed on the source address. Anything not listed is dropped.
site ids_farm

switch tor dpid 0x10 ports 16 tcam 3000 openflow 1.4 ovs

host s1 at tor:1 cores 8 memory 8GiB runs click, vm
host s2 at tor:2 cores 8 memory 8GiB runs click, vm
host s3 at tor:3 cores 4 memory 8GiB runs vm
host s4 at tor:4 cores 4 memory 8GiB runs vm

edge upstream at tor:16     default
edge farm     at tor:9..10  net 10.10.0.0/22

set servers = 10.10.0.0/22
set dns     = 53

class web   = tcp and dst net servers and dst port {80, 443, 8080}
class dns_q = udp and dst net servers and dst port dns

module fw     = firewall(allow: tcp and dst port {80, 443, 8080} or udp and dst port dns)
module ids    = ids(rules: "/etc/suricata/rules/emerging-all.rules")  kind vm  image "suricata-7.qcow2"
module dnslim = ratelimit(rate: 20Kpps, burst: 16KiB)

policy arp_ok  match arp  via pass                       # every edge: address resolution is let through
policy web_in  from upstream  match web    via fw >> ids * 4  symmetric
policy dns_in  from upstream  match dns_q  via dnslim * 2 by src
policy replies from farm      match ip and src net servers  via pass

default drop
