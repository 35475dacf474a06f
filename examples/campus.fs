# campus.fs - a university campus behind one Flowstream platform (the reference site).
# Inbound web meets a firewall and a symmetric pair of IDS VMs, inbound mail a DNS-blocklist
# process, all other Internet traffic a cheap prefilter; the LAN gets a VPN to the branch
# office, TLS sampling, an existing SIP appliance and a destination blocklist.
site campus

switch core  dpid 0x1  ports 48  tcam 4000  openflow 1.3     # OpenFlow switch; tcam = rule budget
switch agg   dpid 0x2  ports 24  tcam 2000
link core:48 agg:24                                         # switch-to-switch link

host mh1 at core:1, core:2  cores 12  memory 16GiB  runs click, process, vm
host mh2 at core:3          cores 12  memory 16GiB  runs click, vm
host mh3 at core:5          cores 12  memory 16GiB  spare   # kept free for fail-over

set lan_net = 10.1.0.0/16

edge internet at core:47   default                          # where unmatched destinations go
edge dmz      at core:46   net 10.0.1.0/24, 10.0.2.0/24
edge lan      at agg:1..4  net lan_net

box accel at core:20 -> core:21     # existing SIP session border controller: in at 20, back at 21

set webfarm  = 10.0.1.0/24
set mailhost = 10.0.2.5
set pbx      = 10.0.2.10
set branch   = 10.200.0.0/16                                # branch office, behind the VPN
set saas     = 198.51.100.0/25                              # SaaS provider whose TLS we sample
set badnets  = {203.0.113.0/24, 198.51.100.128/25}
set ssh      = 22
set admin    = {ssh, 23, 3389}
set webports = {80, 443}
set sip      = 5060..5061

class web      = tcp and dst net webfarm and dst port webports
class mail     = tcp and dst host mailhost and dst port {25, 587}
class voice    = udp and dst host pbx and dst port sip
class tls_saas = tcp and dst port 443 and dst net saas

module fw      = firewall(allow: tcp and dst port webports, deny: src net badnets)  kind click
module ids     = ids(rules: "et-open.rules")  kind vm  cores 2  memory 2GiB  image "suricata.qcow2"
module pre     = classify(suspicious: tcp and dst port admin or src net badnets,
                          scan: icmp and not dst net webfarm)
module deep    = dpi()  kind vm  cores 4  memory 4GiB  image "dpi.qcow2"
module bl      = process(command: "dnsbl-filter --list /etc/fs/dnsbl.txt")  kind process  cores 1  memory 256MiB
module cnt     = monitor()
module enc     = encrypt(spi: 0x100, key: "k1")  cores 2
module dec     = decrypt(spi: 0x200, key: "k2")  cores 2
module gre     = tunnel(remote: 192.0.2.1, local: 192.0.2.254)
module trial   = monitor(sink: true)
module smtp_rl = ratelimit(rate: 10Mbps, burst: 64KiB)

# from the Internet: specific policies first, the catch-all `inspect` last
policy web_in   from internet  match web   via fw >> ids * 2  symmetric
policy mail_in  from internet  match mail  via bl >> cnt
policy vpn_in   from internet  match proto 47 and src host 192.0.2.1 and dst host 192.0.2.254
                via gre >> dec
policy inspect  from internet              via pre { suspicious: deep >> drop, scan: cnt, else: pass }

# from the DMZ: outgoing mail is shaped, decided by the switch
policy mail_out from dmz  match src host mailhost
                via case { tcp and dst port 25: smtp_rl >> cnt, else: pass }

# from the LAN: disjoint destinations, so the order does not matter here
policy vpn      from lan  match dst net branch  via enc >> gre
policy sample   from lan  match tls_saas        via copy 5% to trial >> cnt
policy legacy   from lan  match voice           via copy 1% to (cnt >> drop) >> accel
policy block    from lan  match dst net badnets drop

pin fw to mh1                                 # placement constraint
avoid deep on mh1                             # keep the big DPI VM off the host with the pinned firewall
placement spread
default forward
