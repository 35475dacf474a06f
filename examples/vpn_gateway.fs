# vpn_gateway.fs - a branch office VPN gateway built from Click modules in series.
# Office traffic for the head office is ESP-encrypted, then GRE-tunnelled to the head-office
# gateway; tunnelled traffic coming back is de-tunnelled, then decrypted.
site vpn_gateway

switch gw dpid 0x20 ports 8

host crypto at gw:1 cores 4 memory 4GB runs click

edge wan    at gw:8 default
edge office at gw:2 net 172.16.0.0/24

set hq   = 10.50.0.0/16           # head-office networks
set peer = 203.0.113.1            # head-office tunnel end point
set self = 198.51.100.2           # our tunnel end point

module enc = encrypt(spi: 0x1001, key: "7f3a9c0e5d1b2a4c")  cores 1  memory 256MiB
module dec = decrypt(spi: 0x2001, key: "c4a2b1d5e0c9a3f7")  cores 1  memory 256MiB
module gre = tunnel(remote: 203.0.113.1, local: 198.51.100.2)  kind click

policy outbound from office  match ip and dst net hq                                via enc >> gre
policy inbound  from wan     match proto 47 and src host peer and dst host self     via gre >> dec

placement pack
