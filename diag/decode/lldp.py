"""LLDP (IEEE 802.1AB, ethertype 0x88cc): who is on the other end of this link, and which port.

Contract: ``decode_lldp(data, off, end) -> (values, problem)``: ``values`` holds the LLDPDU's
fields in the order of :data:`LLDP_FIELDS`, ``problem`` None or why the LLDPDU is malformed
(what could be read is kept). Nothing raises.

An LLDPDU is a list of TLVs, each ``type (7 bits) | length (9 bits) | value``; it starts with
Chassis ID (1), Port ID (2) and Time To Live (3) and ends with End (0)::

    chassis_id, port_id   as tshark shows them: a MAC ``aa:bb:..`` (subtype MAC address), an IP
                          (network address), else the text (interface name, locally assigned,
                          alias: printable UTF-8), else hex; ``*_type`` names the subtype
    ttl                   seconds the information stays valid (0: the neighbour is leaving)
    port_description, system_name, system_description     text TLVs 4, 5, 6
    capabilities          enabled system capabilities (TLV 7): ``['bridge', 'router']``
    management_addresses  TLV 8 addresses (IPv4/IPv6 text, else hex)
    port_vlan             IEEE 802.1 port VLAN id (TLV 127, OUI 00-80-c2, subtype 1)
    max_frame_size        IEEE 802.3 maximum frame size (OUI 00-12-0f, subtype 4): the MTU the
                          neighbour's port takes, plus the Ethernet header and FCS
"""
from __future__ import annotations

import socket

ETH_LLDP = 0x88CC

LLDP_FIELDS = ("chassis_id", "chassis_id_type", "port_id", "port_id_type", "ttl",
               "port_description", "system_name", "system_description", "capabilities",
               "management_addresses", "port_vlan", "max_frame_size")
LLDP_COLUMNS = ("frame", "ts", "capture_iface", "iface_name", "ifindex", "tunnel_depth",
                "src_mac", "vlan") + LLDP_FIELDS + ("malformed",)

CHASSIS_SUBTYPES = {1: "chassis-component", 2: "interface-alias", 3: "port-component",
                    4: "mac-address", 5: "network-address", 6: "interface-name", 7: "local"}
PORT_SUBTYPES = {1: "interface-alias", 2: "port-component", 3: "mac-address",
                 4: "network-address", 5: "interface-name", 6: "agent-circuit-id", 7: "local"}
CAPABILITIES = ("other", "repeater", "bridge", "wlan-access-point", "router", "telephone",
                "docsis-cable-device", "station-only", "c-vlan", "s-vlan", "two-port-mac-relay")
_MAC_SUBTYPE = {"chassis": 4, "port": 3}
_NETWORK_SUBTYPE = {"chassis": 5, "port": 4}
_OUI_8021, _OUI_8023 = b"\x00\x80\xc2", b"\x00\x12\x0f"


def _address(raw: bytes) -> str:
    """IANA address family (1 IPv4, 2 IPv6) then the address; anything else in hex."""
    if len(raw) == 5 and raw[0] == 1:
        return socket.inet_ntoa(raw[1:])
    if len(raw) == 17 and raw[0] == 2:
        return socket.inet_ntop(socket.AF_INET6, raw[1:])
    return raw.hex()


def _text(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text if text.isprintable() else raw.hex()


def _identifier(kind: str, value: bytes) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    subtype, body = value[0], value[1:]
    names = CHASSIS_SUBTYPES if kind == "chassis" else PORT_SUBTYPES
    name = names.get(subtype) or f"subtype-{subtype}"
    if subtype == _MAC_SUBTYPE[kind] and len(body) == 6:
        return body.hex(":"), name
    if subtype == _NETWORK_SUBTYPE[kind]:
        return _address(body), name
    return _text(body), name


def decode_lldp(data: bytes, off: int, end: int) -> tuple[tuple, str | None]:
    f: dict = dict.fromkeys(LLDP_FIELDS)
    problem = None
    pos = off
    seen_end = False
    order: list[int] = []
    while pos < end:
        if pos + 2 > end:
            problem = "TLV header truncated"
            break
        head = data[pos] << 8 | data[pos + 1]
        kind, length = head >> 9, head & 0x1FF
        value = data[pos + 2:pos + 2 + length]
        if len(value) < length:
            problem = f"TLV {kind} length {length} past the end of the frame"
            break
        pos += 2 + length
        order.append(kind)
        if kind == 0:
            seen_end = True
            break
        if kind == 1:
            f["chassis_id"], f["chassis_id_type"] = _identifier("chassis", value)
        elif kind == 2:
            f["port_id"], f["port_id_type"] = _identifier("port", value)
        elif kind == 3 and length >= 2:
            f["ttl"] = value[0] << 8 | value[1]
        elif kind in (4, 5, 6):
            f[("port_description", "system_name", "system_description")[kind - 4]] = _text(value)
        elif kind == 7 and length == 4:
            enabled = value[2] << 8 | value[3]
            f["capabilities"] = [name for bit, name in enumerate(CAPABILITIES)
                                 if enabled >> bit & 1]
        elif kind == 8 and length >= 2:
            size = value[0]                 # address string length: family octet + address
            f["management_addresses"] = (f["management_addresses"] or []) + [
                _address(value[1:1 + size])]
        elif kind == 127 and length >= 4:
            oui, subtype, body = value[:3], value[3], value[4:]
            if oui == _OUI_8021 and subtype == 1 and len(body) == 2:
                f["port_vlan"] = body[0] << 8 | body[1]
            elif oui == _OUI_8023 and subtype == 4 and len(body) == 2:
                f["max_frame_size"] = body[0] << 8 | body[1]
    if problem is None:
        if order[:3] != [1, 2, 3]:
            problem = "LLDPDU does not start with Chassis ID, Port ID and TTL"
        elif not seen_end:
            problem = "LLDPDU without End TLV"
    return tuple(f.values()), problem
