"""The names IPFilter patterns may use: protocols, ports, TCP options, ICMP types, header fields, type words.

Click's tables (``elements/ip/ipclassifier.cc``), shared by the parser and the code generator.
"""

from __future__ import annotations

from typing import Any

PROTO_NAMES = {"icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "udp": 17}
TCPUDP, TRANSP = 256, 257  # pseudo protocols: TCP or UDP; any transport
PORT_NAMES = {
    "echo": 7,
    "discard": 9,
    "daytime": 13,
    "chargen": 19,
    "ftp-data": 20,
    "ftp": 21,
    "ssh": 22,
    "telnet": 23,
    "smtp": 25,
    "domain": 53,
    "dns": 53,
    "bootps": 67,
    "bootpc": 68,
    "tftp": 69,
    "finger": 79,
    "www": 80,
    "pop3": 110,
    "sunrpc": 111,
    "auth": 113,
    "nntp": 119,
    "ntp": 123,
    "netbios-ns": 137,
    "netbios-dgm": 138,
    "netbios-ssn": 139,
    "snmp": 161,
    "snmp-trap": 162,
    "irc": 194,
    "imap3": 220,
    "https": 443,
    "rip": 520,
    "route": 520,
    "imaps": 993,
    "pop3s": 995,
}
TCP_OPTS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20}
ICMP_TYPES = {
    "echo-reply": 0,
    "unreachable": 3,
    "sourcequench": 4,
    "redirect": 5,
    "echo": 8,
    "routeradvert": 9,
    "routersolicit": 10,
    "timeexceeded": 11,
    "parameterproblem": 12,
    "timestamp": 13,
    "timestamp-reply": 14,
    "inforeq": 15,
    "inforeq-reply": 16,
    "maskreq": 17,
    "maskreq-reply": 18,
}

# header fields: (transport protocol or None, bit offset, bit length)
F_IPLEN = (None, 16, 16)
F_ID = (None, 32, 16)
F_VERS = (None, 0, 4)
F_HL = (None, 4, 4)
F_TOS = (None, 8, 8)
F_DSCP = (None, 8, 6)
F_TTL = (None, 64, 8)
F_TCPWIN = (6, 112, 16)
F_ICMPTYPE = (1, 0, 8)

TYPE_WORDS: dict[str, Any] = {
    "host": "host",
    "net": "net",
    "port": "port",
    "proto": "proto",
    "opt": "tcpopt",
    "frag": "frag",
    "unfrag": "unfrag",
    "ect": "ect",
    "ce": "ce",
    "len": F_IPLEN,
    "id": F_ID,
    "vers": F_VERS,
    "hl": F_HL,
    "tos": F_TOS,
    "dscp": F_DSCP,
    "ttl": F_TTL,
    "win": F_TCPWIN,
    "type": F_ICMPTYPE,
}
SD_SRC, SD_DST, SD_AND, SD_OR = 1, 2, 3, 4
