site site1
switch sw2 ports 24 dpid 0x1
host h3 at sw2:1, sw2:2 cores 16 memory 64GiB
host h4 at sw2:3, sw2:4 cores 32 memory 64GiB
edge e5 at sw2:5 default
edge e6 at sw2:6 net 133.189.93.0/24
edge e7 at sw2:8..9 net 2001:db8::/32, 154.164.98.0/24
set s8 = da:9a:cb:27:e1:10
set s9 = 12.218.255.0/24
module tap10 = monitor(sink: true)
module m11 = encrypt(spi: 46449, key: "img.qcow2") 
module m12 = process(command: "img.qcow2") 
module m13 = loadbalance(vip: 17.67.200.82, backends: {130.106.134.130, 192.18.17.217}) memory 1GiB
module m14 = dpi() kind vm image "k3y"
policy p15 from e6, e5 match tcp via m12 * 3 by src >> m14
policy p16 match not tcp via m14 * 2 by flow >> case { host 68.206.121.174: m11, host ::: m12 * 3 } >> m11
pin m12 to h4
