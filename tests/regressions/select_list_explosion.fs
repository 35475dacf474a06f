site site1
switch sw2 tcam 45769 dpid 0x1 ports 8
switch sw3 openflow 1.5 ports 8 dpid 0x2
switch sw4 dpid 0x3 ports 16
link sw2:8 sw3:8
link sw3:7 sw4:16
host h5 at sw3:1, sw3:2 cores 8 memory 64GiB runs click, process, vm
host h6 at sw3:3, sw2:1 cores 8 memory 32GiB
host h7 at sw3:4 cores 16 memory 64GiB runs click, process, vm
edge e8 at sw3:5 default
module m9 = classify(l0: ether dst d2:e2:03:a7:e1:30) kind click
module m10 = loadbalance(vip: 55.171.68.135, backends: {55.32.110.222, 73.102.242.132}) kind click memory 256MiB
policy p11 match proto 206 via m9 { l0: m10 >> m10 * 3 by src >> m9, else: m9 } >> case { dst port 9393..10283: m9 >> m10 >> m9, else: m9 >> m9 >> m10 }
policy p12 match src host {203.127.55.185, 70.121.250.232, 68.157.133.215} via m10 * 3 by src >> m9 { l0: m10 * 3 >> m9 * 1 by src, else: m10 >> m9 }
pin m9 to h6
