# legacy_box.fs - reusing appliances the site already owns next to new modules.
# A hardware web application firewall and a WAN optimiser are wired to the switch as boxes;
# inbound traffic is split by the switch itself (case) between the WAF, a Click firewall and
# the direct path; voice from the phone VLAN is shaped and rogue DHCP servers are dropped.
site legacy_box

switch sw dpid 0x50 ports 24 ovs   # Open vSwitch: masked ports keep the RTP range to a few rules

host mh at sw:1 cores 4 memory 8GiB

edge wan at sw:24   default
edge lan at sw:2..3 net 10.40.0.0/16

box waf    at sw:10 -> sw:11      # hardware WAF: sent out of port 10, comes back on 11
box wanopt at sw:12 -> sw:13      # WAN optimiser for traffic to the data centre

set websrv   = {10.40.1.10, 10.40.1.11}
set dhcp_mac = 00:16:3e:00:00:01  # the one legitimate DHCP server
set rtp      = 16384..32767

module cnt = monitor()
module fw  = firewall(deny: udp and dst port 0..1023 and not port {53, 123})
module qos = ratelimit(rate: 2Mbps, burst: 16KiB)

policy rogue_dhcp from lan  match udp and src port 67 and dst port 68 and not ether src dhcp_mac  drop
policy voice      from lan  match vlan 20 and udp and dst port rtp and dscp 46  via qos
policy to_dc      from lan  match tcp and dst net 10.99.0.0/16  via wanopt
policy ingress    from wan  match dst net 10.40.0.0/16
                  via case { tcp and dst host websrv and dst port {80, 443}: waf >> cnt,
                             icmp: pass,
                             else: fw }
