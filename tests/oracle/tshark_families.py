"""The Wireshark view of the routes of the labeled, VPN, EVPN and BGP-LS families, the Prefix-SID
and BGP-LS attributes, IP reassembly and LLDP, reduced to :mod:`tests.oracle.normal`.

Read from tshark's PDML (``-T pdml``), where every field keeps its own element: its JSON merges
repeated keys, and shows VPN-IPv6 routes only as an item's text. tshark's faults are handled
here, not inherited:

* VPN-IPv6 routes are text items (``Label Stack=20 (bottom) RD=65001:100, IPv6=2001:db8::/48``);
  with a type-2 route distinguisher tshark 4.0 prints its format string unexpanded
  (``RD=%u.%u:%u, IPv6=%s/%u``, in ``show`` where ``showname`` should be): such entries are
  returned apart, as ``unreadable``.
* a locally assigned LLDP chassis or port id (text) is shown as hex bytes: decoded here.
* an EVPN route distinguisher is shown as hex: it is turned into text here.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from tests.oracle.normal import (FAMILIES, LS_NLRI_TYPES, LS_PROTOCOLS, NlriEntry, canon_ip,
                                 canon_prefix, rd_text)
from tests.oracle.tshark import BASE_PREFS, _args, _run, asn_pref

_V6_TEXT = re.compile(r"^Label Stack=(?P<labels>.+?)(?: RD=(?P<rd>\S+?))?, IPv6=(?P<prefix>\S+)$")


def _pdml(path: Path, decode_as: Sequence[str], prefs: Sequence[str], display: str) -> ET.Element:
    return ET.fromstring(_run(_args(path, decode_as, prefs) + ["-Y", display, "-T", "pdml"]))


def _frame(packet: ET.Element) -> int:
    return int(next(f.get("show") for f in packet.iter("field") if f.get("name") == "frame.number"))


def _show(node: ET.Element, name: str) -> str | None:
    for f in node.iter("field"):
        if f.get("name") == name:
            return f.get("show")
    return None


def _router_id(hex_text: str) -> str:
    raw = bytes.fromhex(hex_text.replace(":", ""))
    if len(raw) == 4:
        return ".".join(map(str, raw))
    if len(raw) == 6:
        return f"{raw[0:2].hex()}.{raw[2:4].hex()}.{raw[4:6].hex()}"
    return raw.hex()


@lru_cache(maxsize=32)
def nlri_entries(path: Path, decode_as: Sequence[str] = (), four_octet: bool | None = True,
                 ) -> tuple[dict[int, list[NlriEntry]], dict[int, list[str]]]:
    """frame -> the routes tshark shows in MP_REACH / MP_UNREACH of the families of
    :data:`tests.oracle.normal.FAMILIES` (wire order), and frame -> entries it cannot show."""
    root = _pdml(path, decode_as, [*BASE_PREFS, asn_pref(four_octet)], "bgp")
    out: dict[int, list[NlriEntry]] = {}
    unreadable: dict[int, list[str]] = {}
    for packet in root.iter("packet"):
        frame = _frame(packet)
        for attr in packet.iter("field"):
            if attr.get("name") != "bgp.update.path_attribute":
                continue
            kids = {c.get("name"): c for c in attr}
            code = int(kids["bgp.update.path_attribute.type_code"].get("show"))
            if code not in (14, 15):
                continue
            kind = "reach" if code == 14 else "unreach"
            afi = int(kids[f"bgp.update.path_attribute.mp_{kind}_nlri.afi"].get("show"))
            safi = int(kids[f"bgp.update.path_attribute.mp_{kind}_nlri.safi"].get("show"))
            family = FAMILIES.get((afi, safi))
            nlri = kids.get(f"bgp.update.path_attribute.mp_{kind}_nlri")
            if family is None or nlri is None:
                continue
            action = "announce" if code == 14 else "withdraw"
            for entry in nlri:
                got = _entry(entry, action, family, kind)
                if isinstance(got, str):
                    unreadable.setdefault(frame, []).append(got)
                elif got is not None:
                    out.setdefault(frame, []).append(got)
    return out, unreadable


def _entry(e: ET.Element, action: str, family: str, kind: str) -> NlriEntry | str | None:
    name = e.get("name")
    if family == "l2vpn/evpn":
        return _evpn(e, action) if name == "bgp.evpn.nlri" else None
    if family == "bgp-ls/bgp-ls":
        return _bgp_ls(e, action) if name == "bgp.ls.nlri" else None
    if family == "ipv4/flowspec":
        return None
    if name == "bgp.label_stack" and not len(e):           # an IPv6 route as an item's text
        text = e.get("showname") or ""
        if not text.startswith("Label Stack="):             # the unexpanded one swaps the two
            text = e.get("show") or ""
        m = _V6_TEXT.match(text)
        if m is None or "%" in text:
            return text
        return NlriEntry(action, family, canon_prefix(m["prefix"]), m["rd"], m["labels"])
    labels = _show(e, "bgp.label_stack")
    bits = _show(e, "bgp.prefix_length")
    address = (_show(e, f"bgp.mp_{kind}_nlri_ipv4_prefix")
               or _show(e, f"bgp.mp_{kind}_nlri_ipv6_prefix"))
    if labels is None or bits is None or address is None:
        return None
    rd = _show(e, "bgp.rd")
    n_labels = 1 if "withdrawn" in labels else labels.count(",") + 1
    plen = int(bits) - 24 * n_labels - (64 if rd is not None else 0)
    return NlriEntry(action, family, canon_prefix(f"{address}/{plen}"), rd, labels)


def _evpn(e: ET.Element, action: str) -> NlriEntry:
    rtype = int(_show(e, "bgp.evpn.nlri.rt"))
    rd = rd_text(bytes.fromhex(_show(e, "bgp.evpn.nlri.rd").replace(":", "")))
    esi = _show(e, "bgp.evpn.nlri.esi")
    tag = _show(e, "bgp.evpn.nlri.etag")
    mac = _show(e, "bgp.evpn.nlri.mac_addr")
    ip = _show(e, "bgp.evpn.nlri.ip.addr") or _show(e, "bgp.evpn.nlri.ipv6.addr")
    labels = tuple(int(v) for v in (_show(e, "bgp.evpn.nlri.mpls_ls1"),
                                    _show(e, "bgp.evpn.nlri.mpls_ls2")) if v is not None)
    prefix = gateway = None
    if rtype == 5:
        prefix = canon_prefix(f"{ip}/{_show(e, 'bgp.evpn.nlri.prefix_len')}")
        ip = None
        gateway = _show(e, "bgp.evpn.nlri.ipv4.gtw_addr") or _show(e, "bgp.evpn.nlri.ipv6.gtw_addr")
        labels = (int(_show(e, "bgp.update.path_attribute.mpls_label_value")),)
    return NlriEntry(action, "l2vpn/evpn", prefix, rd, None, rtype,
                     esi if rtype in (1, 2, 4, 5) else None,
                     int(tag) if tag is not None and rtype != 4 else None,
                     mac.lower() if mac else None, canon_ip(ip) if ip else None,
                     canon_ip(gateway) if gateway else None, labels)


def _bgp_ls(e: ET.Element, action: str) -> NlriEntry:
    ntype = int(_show(e, "bgp.ls.nlri_type"))
    parts = [LS_NLRI_TYPES.get(ntype, f"nlri-type-{ntype}"),
             LS_PROTOCOLS.get(int(_show(e, "bgp.ls.nlri_node.protocol_id")), "?"),
             _router_id(_show(e, "bgp.ls.tlv.igp_router_id"))]
    address = _show(e, "bgp.ls.nlri_ip_reachability_prefix_ip")
    if address is not None:
        parts.append(canon_prefix(f"{address}/{_show(e, 'bgp.prefix_length')}"))
    return NlriEntry(action, "bgp-ls/bgp-ls", ls_nlri=":".join(parts))


# --- attributes named by TLV ----------------------------------------------------------------------

@lru_cache(maxsize=32)
def tlv_attributes(path: Path, four_octet: bool | None = True) -> dict[int, dict[str, list]]:
    """frame -> {'label_index': [...], 'srgb': [(base, range)], 'node_name': [...],
    'router_id': [...], 'prefix_metric': [...]} from Prefix-SID (40) and BGP-LS (29)."""
    root = _pdml(path, (), [*BASE_PREFS, asn_pref(four_octet)],
                 "bgp.update.path_attribute.type_code == 40 || "
                 "bgp.update.path_attribute.type_code == 29")
    out: dict[int, dict[str, list]] = {}
    for packet in root.iter("packet"):
        got = out.setdefault(_frame(packet), {})
        for f in packet.iter("field"):
            name, show = f.get("name"), f.get("show")
            if name == "bgp.prefix_sid.label_index.value":
                got.setdefault("label_index", []).append(int(show))
            elif name == "bgp.prefix_sid.originator_srgb_block":
                got.setdefault("srgb", []).append(
                    (int(_show(f, "bgp.prefix_sid.originator_srgb_base")),
                     int(_show(f, "bgp.prefix_sid.originator_srgb_range"))))
            elif name == "bgp.ls.tlv.node_name_value":
                got.setdefault("node_name", []).append(show)
            elif name == "bgp.ls.tlv.ipv4_router_id_value":
                got.setdefault("router_id", []).append(show)
            elif name == "bgp.ls.tlv.prefix_metric_value":
                got.setdefault("prefix_metric", []).append(int(show, 0))
    return out


# --- IP reassembly and LLDP ---------------------------------------------------------------------

@lru_cache(maxsize=32)
def reassembled(path: Path, decode_as: Sequence[str] = ()) -> dict[int, dict[str, object]]:
    """frame -> {'l3', 'fragments', 'length'} for each frame where tshark reassembled an IP
    datagram (outer or inner): the frame, how many fragments, the reassembled length."""
    root = _pdml(path, decode_as, BASE_PREFS, "ip.fragment.count || ipv6.fragment.count")
    out: dict[int, dict[str, object]] = {}
    for packet in root.iter("packet"):
        frame = _frame(packet)
        for f in packet.iter("field"):
            for l3, prefix in (("ipv4", "ip"), ("ipv6", "ipv6")):
                if f.get("name") == f"{prefix}.fragments":
                    out.setdefault(frame, {"found": []})["found"].append(
                        (l3, int(_show(f, f"{prefix}.fragment.count")),
                         int(_show(f, f"{prefix}.reassembled.length"))))
    return out


LLDP_FIELDS = {
    "lldp.chassis.id.mac": "chassis_id", "lldp.chassis.id": "chassis_id",
    "lldp.chassis.id.ip4": "chassis_id", "lldp.port.id.mac": "port_id", "lldp.port.id": "port_id",
    "lldp.time_to_live": "ttl", "lldp.tlv.system.name": "system_name",
    "lldp.port.desc": "port_description", "lldp.mgn.addr.ip4": "management_addresses",
    "lldp.ieee.802_1.port_vlan.id": "port_vlan", "lldp.ieee.802_3.max_frame_size": "max_frame_size",
}


def _maybe_text(name: str, show: str) -> str:
    """tshark shows a locally assigned id (bytes) as colon hex; the sender wrote text."""
    if name in ("lldp.chassis.id", "lldp.port.id") and re.fullmatch(r"([0-9a-f]{2}:)*[0-9a-f]{2}",
                                                                     show):
        raw = bytes.fromhex(show.replace(":", ""))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return show
        return text if text.isprintable() else show
    return show


@lru_cache(maxsize=32)
def lldp_facts(path: Path) -> dict[int, dict[str, object]]:
    root = _pdml(path, (), BASE_PREFS, "lldp")
    out: dict[int, dict[str, object]] = {}
    for packet in root.iter("packet"):
        facts: dict[str, object] = {}
        for f in packet.iter("field"):
            key = LLDP_FIELDS.get(f.get("name"))
            if key is None:
                continue
            show = f.get("show")
            if key == "management_addresses":
                facts.setdefault(key, []).append(show)
            elif key in ("ttl", "port_vlan", "max_frame_size"):
                facts[key] = int(show)
            else:
                facts.setdefault(key, _maybe_text(f.get("name"), show))
        out[_frame(packet)] = facts
    return out
