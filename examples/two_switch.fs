# two_switch.fs - a site spread over two switches joined by one link.
# Users hang off the south switch, the uplink and the servers off the north one, and the module
# hosts are split between the two, so chains cross the link (some of them twice). The branch
# router is dual-homed, one port on each switch.
site two_switch

switch north dpid 0xa ports 24 tcam 2500 openflow 1.5 ovs
switch south dpid 0xb ports 24 ovs
link north:24 south:24

host m1 at north:1 cores 4 memory 8GiB runs click
host m2 at south:1 cores 4 memory 8GiB runs click

edge uplink  at north:20          default
edge servers at north:10          net 10.80.0.0/24
edge users   at south:10..11      net 10.70.0.0/16
edge branch  at north:12, south:12  net 10.90.0.0/24

set internal   = 10.0.0.0/8
set quarantine = 10.70.99.0/24
set stolen     = 02:42:0a:46:00:63

module fw     = firewall(deny: net quarantine or host 10.80.0.66 or ether stolen)
module acct   = monitor(sink: false)
module shaper = ratelimit(rate: 1.5Mpps, burst: 2MB)

policy users_out  from users, branch          match ip and not dst net internal  via fw >> acct * 2 by flow
policy to_servers from uplink, users, branch  match tcp and dst net 10.80.0.0/24  via shaper >> acct * 2

pin shaper to m2
avoid fw on m2
