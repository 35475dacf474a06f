# trial_copy.fs - trialling new modules on copies of production traffic.
# 5% of web flows are copied to a sink monitor (a new statistics module on trial), and 0.5% of
# DNS flows are copied through a candidate IDS rule set whose output is discarded; the
# originals go on through the production firewall untouched.
site trial_copy

switch sw dpid 0x60 ports 16

host prod  at sw:1 cores 4 memory 8GiB runs click
host bench at sw:2 cores 6 memory 8GiB runs click, vm

edge internet at sw:16 default
edge dc       at sw:15 net 10.60.0.0/20

class web = tcp and dst net 10.60.0.0/20 and dst port {80, 443}
class dns = udp and dst net 10.60.0.0/20 and dst port 53

module fw        = firewall(allow: tcp and dst port {80, 443} or udp and dst port 53)
module trial     = monitor(sink: true)
module candidate = ids(rules: "candidate-2024-06.rules")  kind vm  cores 2  memory 2GiB  image "suricata.qcow2"

policy web_in from internet  match web  via copy 5% to trial >> fw
policy dns_in from internet  match dns  via copy 0.5% to (candidate >> drop) >> fw

pin trial to bench
avoid fw on bench
