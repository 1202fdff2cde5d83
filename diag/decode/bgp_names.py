"""Names for BGP numbers: message types, AFI/SAFI, capabilities, NOTIFICATION codes, communities.

Pure lookup tables (IANA registries "BGP Parameters", "Capability Codes", "Address Family
Numbers", "SAFI Values", "BGP Well-known Communities", "BGP Error (Notification) Codes") plus
tiny helpers that fall back to ``"<kind>-N"`` for numbers the tables do not know, so every value
gets a stable printable name. Imports nothing from diag; no I/O.
"""
from __future__ import annotations

# RFC 4271 4.1, RFC 2918 (ROUTE-REFRESH).
MESSAGE_TYPES: dict[int, str] = {
    1: "OPEN",
    2: "UPDATE",
    3: "NOTIFICATION",
    4: "KEEPALIVE",
    5: "ROUTE-REFRESH",
}

# IANA Address Family Numbers (only the ones BGP carries in practice).
AFI_NAMES: dict[int, str] = {1: "ipv4", 2: "ipv6", 25: "l2vpn", 16388: "bgp-ls"}

# IANA SAFI values.
SAFI_NAMES: dict[int, str] = {
    1: "unicast",
    2: "multicast",
    4: "labeled-unicast",
    5: "mvpn",
    65: "vpls",
    70: "evpn",
    71: "bgp-ls",
    72: "bgp-ls-vpn",
    73: "sr-te-policy",
    128: "mpls-vpn",
    129: "mpls-vpn-multicast",
    132: "rt-constraint",
    133: "flowspec",
    134: "flowspec-vpn",
}


def afi_name(afi: int) -> str:
    return AFI_NAMES.get(afi) or f"afi-{afi}"


def safi_name(safi: int) -> str:
    return SAFI_NAMES.get(safi) or f"safi-{safi}"


def family_name(afi: int, safi: int) -> str:
    """``'ipv4/unicast'``, ``'l2vpn/evpn'``, ``'afi-99/safi-7'``."""
    return f"{afi_name(afi)}/{safi_name(safi)}"


# IANA Capability Codes (RFC 5492 registry). Names are the short forms used in open_capabilities.
CAPABILITY_NAMES: dict[int, str] = {
    1: "multiprotocol",                 # RFC 4760
    2: "route-refresh",                 # RFC 2918
    3: "outbound-route-filtering",      # RFC 5291
    4: "multiple-routes",               # RFC 8277 (deprecated)
    5: "extended-nexthop",              # RFC 8950
    6: "extended-message",              # RFC 8654
    7: "bgpsec",                        # RFC 8205
    8: "multiple-labels",               # RFC 8277
    9: "bgp-role",                      # RFC 9234
    64: "graceful-restart",             # RFC 4724
    65: "4-octet-as",                   # RFC 6793
    67: "dynamic-capability",           # draft-ietf-idr-dynamic-cap
    68: "multisession",                 # draft-ietf-idr-bgp-multisession
    69: "add-path",                     # RFC 7911
    70: "enhanced-route-refresh",       # RFC 7313
    71: "long-lived-graceful-restart",  # RFC 9494
    72: "routing-policy-distribution",  # draft-ietf-idr-rpd
    73: "fqdn",                         # draft-walton-bgp-hostname-capability
    74: "bfd",                          # RFC 9384 strict mode
    75: "software-version",             # draft-abraitis-bgp-version-capability
    76: "paths-limit",                  # draft-abraitis-idr-addpath-paths-limit
    128: "route-refresh-cisco",         # pre-standard RFC 2918 code
    130: "outbound-route-filtering-cisco",
    131: "multisession-cisco",
}


def capability_name(code: int) -> str:
    return CAPABILITY_NAMES.get(code) or f"capability-{code}"


# RFC 7911 Send/Receive field.
ADDPATH_MODES: dict[int, str] = {1: "receive", 2: "send", 3: "send/receive"}

# RFC 9234 BGP role values.
BGP_ROLES: dict[int, str] = {0: "provider", 1: "rs", 2: "rs-client", 3: "customer", 4: "peer"}

# RFC 4271 6.x, RFC 4486/9003 (Cease), RFC 6608 (FSM), RFC 7313 (ROUTE-REFRESH), RFC 8538
# (Hard Reset), RFC 9234 (Role Mismatch), RFC 9384 (BFD Down), RFC 9687 (Send Hold Timer).
NOTIFICATION_CODES: dict[int, str] = {
    1: "Message Header Error",
    2: "OPEN Message Error",
    3: "UPDATE Message Error",
    4: "Hold Timer Expired",
    5: "Finite State Machine Error",
    6: "Cease",
    7: "ROUTE-REFRESH Message Error",
    8: "Send Hold Timer Expired",
}

NOTIFICATION_SUBCODES: dict[int, dict[int, str]] = {
    1: {
        1: "Connection Not Synchronized",
        2: "Bad Message Length",
        3: "Bad Message Type",
    },
    2: {
        1: "Unsupported Version Number",
        2: "Bad Peer AS",
        3: "Bad BGP Identifier",
        4: "Unsupported Optional Parameter",
        5: "Authentication Failure",          # deprecated (RFC 4271 appendix A)
        6: "Unacceptable Hold Time",
        7: "Unsupported Capability",          # RFC 5492
        11: "Role Mismatch",                  # RFC 9234
    },
    3: {
        1: "Malformed Attribute List",
        2: "Unrecognized Well-known Attribute",
        3: "Missing Well-known Attribute",
        4: "Attribute Flags Error",
        5: "Attribute Length Error",
        6: "Invalid ORIGIN Attribute",
        7: "AS Routing Loop",                 # deprecated
        8: "Invalid NEXT_HOP Attribute",
        9: "Optional Attribute Error",
        10: "Invalid Network Field",
        11: "Malformed AS_PATH",
    },
    5: {
        1: "Receive Unexpected Message in OpenSent State",
        2: "Receive Unexpected Message in OpenConfirm State",
        3: "Receive Unexpected Message in Established State",
    },
    6: {
        1: "Maximum Number of Prefixes Reached",
        2: "Administrative Shutdown",
        3: "Peer De-configured",
        4: "Administrative Reset",
        5: "Connection Rejected",
        6: "Other Configuration Change",
        7: "Connection Collision Resolution",
        8: "Out of Resources",
        9: "Hard Reset",
        10: "BFD Down",
    },
    7: {1: "Invalid Message Length"},
}

# Cease subcodes that may carry a shutdown communication (RFC 9003 section 2).
SHUTDOWN_COMMUNICATION_SUBCODES = frozenset({2, 4})
CEASE = 6
HARD_RESET = 9


def notification_name(code: int) -> str:
    return NOTIFICATION_CODES.get(code) or f"code-{code}"


def notification_subname(code: int, subcode: int) -> str:
    if subcode == 0:
        return "Unspecific"                   # RFC 4271 6: subcode 0 means "no specific one"
    return NOTIFICATION_SUBCODES.get(code, {}).get(subcode) or f"subcode-{subcode}"


# RFC 7313 ROUTE-REFRESH message subtypes ("Reserved" octet in RFC 2918).
REFRESH_SUBTYPES: dict[int, str] = {0: "normal", 1: "BoRR", 2: "EoRR"}

# RFC 4271 5.1.1 ORIGIN values.
ORIGINS: tuple[str, ...] = ("IGP", "EGP", "INCOMPLETE")

# IANA "BGP Well-known Communities": RFC 1997, 3765, 7611, 7999, 8326, 9494 (LLGR).
WELL_KNOWN_COMMUNITIES: dict[int, str] = {
    0xFFFF0000: "graceful-shutdown",      # RFC 8326
    0xFFFF0001: "accept-own",             # RFC 7611
    0xFFFF0002: "route-filter-translated-v4",
    0xFFFF0003: "route-filter-v4",
    0xFFFF0004: "route-filter-translated-v6",
    0xFFFF0005: "route-filter-v6",
    0xFFFF0006: "llgr-stale",             # RFC 9494
    0xFFFF0007: "no-llgr",                # RFC 9494
    0xFFFF0008: "accept-own-nexthop",
    0xFFFF029A: "blackhole",              # RFC 7999
    0xFFFFFF01: "no-export",              # RFC 1997
    0xFFFFFF02: "no-advertise",           # RFC 1997
    0xFFFFFF03: "no-export-subconfed",    # RFC 1997
    0xFFFFFF04: "no-peer",                # RFC 3765
}

# RFC 4271 / IANA path attribute type codes.
ATTR_ORIGIN = 1
ATTR_AS_PATH = 2
ATTR_NEXT_HOP = 3
ATTR_MED = 4
ATTR_LOCAL_PREF = 5
ATTR_ATOMIC_AGGREGATE = 6
ATTR_AGGREGATOR = 7
ATTR_COMMUNITIES = 8
ATTR_ORIGINATOR_ID = 9
ATTR_CLUSTER_LIST = 10
ATTR_MP_REACH = 14
ATTR_MP_UNREACH = 15
ATTR_EXT_COMMUNITIES = 16
ATTR_AS4_PATH = 17
ATTR_AS4_AGGREGATOR = 18
ATTR_LARGE_COMMUNITY = 32

ATTR_PMSI_TUNNEL = 22
ATTR_BGP_LS = 29
ATTR_PREFIX_SID = 40
AS_TRANS = 23456                # RFC 6793: stands for a 4-octet AS where only 2 octets fit

ATTRIBUTE_NAMES: dict[int, str] = {
    1: "ORIGIN", 2: "AS_PATH", 3: "NEXT_HOP", 4: "MULTI_EXIT_DISC", 5: "LOCAL_PREF",
    6: "ATOMIC_AGGREGATE", 7: "AGGREGATOR", 8: "COMMUNITIES", 9: "ORIGINATOR_ID",
    10: "CLUSTER_LIST", 14: "MP_REACH_NLRI", 15: "MP_UNREACH_NLRI",
    16: "EXTENDED_COMMUNITIES", 17: "AS4_PATH", 18: "AS4_AGGREGATOR",
    22: "PMSI_TUNNEL",                   # RFC 6514
    23: "TUNNEL_ENCAPSULATION",          # RFC 9012
    25: "IPV6_EXTENDED_COMMUNITIES",     # RFC 5701
    26: "AIGP",                          # RFC 7311
    29: "BGP-LS",                        # RFC 9552 (was 7752)
    32: "LARGE_COMMUNITY",
    33: "BGPSEC_PATH",                   # RFC 8205
    35: "OTC",                           # RFC 9234 only-to-customer
    40: "PREFIX_SID",                    # RFC 8669
    128: "ATTR_SET",                     # RFC 6368
}

# Which known attributes are optional (flag bit 0x80 must be set) and which are well-known
# (must be clear), RFC 4271 5 / the defining RFCs. Used to report Attribute Flags Errors.
OPTIONAL_ATTRIBUTES = frozenset({4, 7, 8, 9, 10, 14, 15, 16, 17, 18, 22, 29, 32, 40})
WELL_KNOWN_ATTRIBUTES = frozenset({1, 2, 3, 5, 6})

# Extended community (RFC 4360 / 5668 / 7153) type+subtype -> short prefix, for the few whose
# value is easy to read ("rt 65000:100"); everything else is shown as 16 hex digits.
EXT_COMMUNITY_SUBTYPES: dict[int, str] = {0x02: "rt", 0x03: "soo"}

# RFC 9012 / IANA "BGP Tunnel Encapsulation Attribute Tunnel Types" (encapsulation extended
# community 0x030c, and the PMSI tunnel's VXLAN/MPLS readings).
TUNNEL_TYPES: dict[int, str] = {1: "l2tpv3", 2: "gre", 7: "ip-in-ip", 8: "vxlan", 9: "nvgre",
                                10: "mpls", 11: "mpls-in-gre", 12: "vxlan-gpe",
                                13: "mpls-in-udp", 19: "geneve"}

# RFC 6514 5 PMSI tunnel types (RFC 7524, RFC 8365 ingress replication for VXLAN EVPN).
PMSI_TUNNEL_TYPES: dict[int, str] = {0: "no-tunnel-info", 1: "rsvp-te-p2mp", 2: "mldp-p2mp",
                                     3: "pim-ssm", 4: "pim-sm", 5: "bidir-pim",
                                     6: "ingress-replication", 7: "mldp-mp2mp"}

# --- families whose NLRI diag splits into one route per entry (bgp_families.py) ---------------

LABELED_SAFIS = frozenset({4, 128})          # RFC 8277 labeled unicast, RFC 4364 VPN
AFI_L2VPN, SAFI_EVPN = 25, 70
AFI_BGP_LS, SAFI_BGP_LS, SAFI_BGP_LS_VPN = 16388, 71, 72

# RFC 7432 7 / RFC 9136 3 EVPN route types.
EVPN_ROUTE_TYPES: dict[int, str] = {1: "ethernet-ad", 2: "mac-ip", 3: "inclusive-multicast",
                                    4: "ethernet-segment", 5: "ip-prefix"}

# RFC 9552 5.2 BGP-LS NLRI types (RFC 9514 adds 6 for SRv6 SIDs).
BGP_LS_NLRI_TYPES: dict[int, str] = {1: "node", 2: "link", 3: "ipv4-prefix", 4: "ipv6-prefix",
                                     6: "srv6-sid"}

# RFC 9552 5.2.1 protocol ids.
BGP_LS_PROTOCOLS: dict[int, str] = {1: "isis-l1", 2: "isis-l2", 3: "ospfv2", 4: "direct",
                                    5: "static", 6: "ospfv3", 7: "bgp"}

# BGP-LS TLV code points (IANA "BGP-LS NLRI and Attribute TLVs"; RFC 9552, 9085, 9514) whose
# names are shown for the BGP-LS attribute (type 29). Values of the ones in BGP_LS_TLV_FORMATS
# are decoded, the others are named with their length.
BGP_LS_TLV_NAMES: dict[int, str] = {
    256: "local-node-descriptors", 257: "remote-node-descriptors",
    258: "link-local-remote-identifiers", 259: "ipv4-interface-address",
    260: "ipv4-neighbor-address", 261: "ipv6-interface-address", 262: "ipv6-neighbor-address",
    263: "multi-topology-id", 264: "ospf-route-type", 265: "ip-reachability",
    512: "autonomous-system", 513: "bgp-ls-identifier", 514: "ospf-area-id",
    515: "igp-router-id",
    1024: "node-flags", 1025: "opaque-node", 1026: "node-name", 1027: "isis-area-id",
    1028: "ipv4-router-id-local", 1029: "ipv6-router-id-local",
    1030: "ipv4-router-id-remote", 1031: "ipv6-router-id-remote",
    1034: "sr-capabilities", 1035: "sr-algorithm", 1036: "sr-local-block",
    1088: "admin-group", 1089: "max-link-bandwidth", 1090: "max-reservable-bandwidth",
    1091: "unreserved-bandwidth", 1092: "te-default-metric", 1093: "link-protection-type",
    1094: "mpls-protocol-mask", 1095: "igp-metric", 1096: "srlg", 1097: "opaque-link",
    1098: "link-name", 1099: "adjacency-sid", 1100: "lan-adjacency-sid",
    1152: "igp-flags", 1153: "igp-route-tag", 1154: "igp-extended-route-tag",
    1155: "prefix-metric", 1156: "ospf-forwarding-address", 1157: "opaque-prefix",
    1158: "prefix-sid", 1170: "prefix-attribute-flags", 1171: "source-router-id",
}

# RFC 8669 3 Prefix-SID attribute TLVs; RFC 9252 SRv6 service TLVs.
PREFIX_SID_TLV_NAMES: dict[int, str] = {1: "label-index", 3: "originator-srgb",
                                        5: "srv6-l3-service", 6: "srv6-l2-service"}
