# hetero.fs - heterogeneous processing: each kind of traffic gets its own chain of modules.
# Web to the public VIP is rate-limited and load-balanced over three servers, mail goes to two
# spam-filter processes, office browsing is sharded over two caches by destination and then
# source-NATed like all other office traffic to the Internet (replies come back the same way).
site hetero

switch sw dpid 0x40 ports 24 tcam 1500 ovs

host a at sw:1 cores 4 memory 8GiB runs click, process
host b at sw:2 cores 4 memory 8GiB runs click, process

edge internet at sw:24 default
edge webnet   at sw:10 net 10.30.1.0/24
edge mailnet  at sw:11 net 10.30.2.0/24
edge office   at sw:12 net 192.168.10.0/24

set internal = {10.0.0.0/8, 192.168.0.0/16}
set vip      = 203.0.113.80
set public   = 203.0.113.1

class web_vip  = tcp and dst host vip and dst port {80, 443}
class mail     = tcp and dst net 10.30.2.0/24 and dst port {25, 465, 587}
class browsing = ip and tcp and dst port {80, 8080} and not dst net internal

module lim   = ratelimit(rate: 1Gbps, burst: 256KiB)
module lb    = loadbalance(vip: 203.0.113.80, backends: {10.30.1.11, 10.30.1.12, 10.30.1.13})
module spam  = process(command: "spamfilter --socket \"/run/spamd/spamd.sock\" --reject \"^X-Spam: \\d+\"")  memory 1GiB  replicas 2
module cache = process(command: "squid -N -f /etc/squid/squid.conf")  kind process  cores 1  memory 512MiB
module snat  = nat(to: 203.0.113.1)

policy web_in     from internet  match web_vip  via lim >> lb
policy web_back   from webnet    match tcp and src net 10.30.1.0/24 and src port {80, 443}  via lb
policy mail_in    from internet  match mail     via spam
policy nat_back   from internet  match ip and dst host public  via snat
policy browse     from office    match browsing via cache * 2 by dst >> snat
policy office_out from office    match ip and not dst net internal  via snat

placement pack
