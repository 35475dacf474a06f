# tutorial.fs - the site built in docs/tutorial.md
site tutorial

switch sw dpid 0x1 ports 8 tcam 1000

host mh1 at sw:1 cores 4 memory 8GiB

edge internet at sw:8 default
edge web      at sw:7 net 10.0.1.0/24

class http = tcp and dst net 10.0.1.0/24 and dst port {80, 443}

module fw  = firewall(allow: tcp and dst port {80, 443})
module cnt = monitor()

policy web_in from internet match http via fw >> cnt symmetric

policy no_ping from internet match icmp drop
