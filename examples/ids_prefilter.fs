# ids_prefilter.fs - deep inspection only where it is needed.
# A cheap Click classifier sends suspicious flows (remote-admin ports, known-bad sources) to a
# DPI VM, drops UDP probes and lets everything else pass untouched. Mail goes through two
# IDS replicas whose alert output is quarantined.
site ids_prefilter

switch tor dpid 0x30 ports 24

host fast at tor:1 cores 4 memory 4GiB  runs click
host vm1  at tor:2 cores 8 memory 16GiB runs vm
host vm2  at tor:3 cores 8 memory 16GiB runs vm

edge internet at tor:24 default
edge servers  at tor:5  net 10.20.0.0/24

set badsrc       = {203.0.113.0/24, 192.0.2.0/24}
set remote_admin = {22, 23, 3389, 5900..5901}
set mx           = 10.20.0.25

module pre        = classify(suspicious: tcp and dst port remote_admin or src net badsrc,
                             probe: udp and not dst port {53, 123})
module deep       = dpi()  kind vm  cores 4  memory 4GiB  image "ndpi-inspector.qcow2"
module ids        = ids(rules: "/etc/suricata/rules/smtp.rules")  kind vm  image "suricata.qcow2"
module quarantine = monitor(sink: true)

policy mail_in from internet  match tcp and dst host mx and dst port {25, 465, 587}
               via ids * 2 { alert: quarantine, else: pass }
policy inspect from internet  match dst net 10.20.0.0/24
               via pre { suspicious: deep, probe: drop, else: pass }
