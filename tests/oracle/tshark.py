"""The Wireshark view of a capture, through tshark (JSON, fields) and pyshark (PDML), reduced to
the normal form of :mod:`tests.oracle.normal`.

tshark's own faults are handled here rather than inherited: it needs decode-as for VXLAN on 8472
and for BGP on other ports (callers pass ``decode_as``); it guesses 2- vs 4-octet AS numbers unless
``bgp.asn_len`` is set, so callers pass what the OPENs negotiated; it only reassembles out-of-order
TCP segments when ``tcp.reassemble_out_of_order`` is on. It also dissects the packet quoted inside
ICMP errors as if it were live traffic, so tunnel layers and ports found after an ICMP layer are
dropped. pyshark is used in PDML mode (``use_json=False``): its JSON mode merges repeated layers
(outer and inner ``eth``/``ip`` of a tunnel) into one, which would hide nesting.
"""
from __future__ import annotations

import json
import shutil
from functools import lru_cache
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.oracle.normal import (ArpFact, BgpMsg, FrameBgp, Route, TunnelLayer, as_path_text,
                                 canon_ip, canon_prefix, community_text)

BASE_PREFS = ("tcp.desegment_tcp_streams:TRUE", "tcp.reassemble_out_of_order:TRUE",
              "tcp.check_checksum:FALSE", "bgp.desegment:TRUE")


def available() -> bool:
    return shutil.which("tshark") is not None


def _args(path: Path, decode_as: Sequence[str], prefs: Iterable[str]) -> list[str]:
    args = ["tshark", "-n", "-r", str(path)]
    for p in prefs:
        args += ["-o", p]
    for d in decode_as:
        args += ["-d", d]
    return args


def _run(args: list[str]) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"tshark failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout


def asn_pref(four_octet: bool | None) -> str:
    return "bgp.asn_len:" + {None: "Auto-detect", True: "4 octet", False: "2 octet"}[four_octet]


# --- BGP ----------------------------------------------------------------------------------------

def _as_list(x: Any) -> list[Any]:
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


def _walk(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key, value) in the JSON tree, depth first, lists flattened."""
    if isinstance(node, dict):
        for k, v in node.items():
            for item in _as_list(v):
                yield k, item
                yield from _walk(item, k)


def _prefixes(node: Any) -> list[tuple[str, int | None]]:
    out = []
    for _k, v in _walk(node):
        if isinstance(v, dict) and "bgp.prefix_length" in v:
            addr = next((x for k, x in v.items() if k.endswith("prefix") and k != "bgp.prefix_length"),
                        None)
            if addr is None:
                continue
            pid = v.get("bgp.nlri_path_id")
            out.append((canon_prefix(f"{addr}/{v['bgp.prefix_length']}"),
                        int(pid) if pid is not None else None))
    return out


def _segments(attr: dict[str, Any]) -> str:
    segs = []
    for seg in _as_list(attr.get("bgp.update.path_attribute.as_path_segment")):
        asns = _as_list(seg.get("bgp.update.path_attribute.as_path_segment.as4")
                        or seg.get("bgp.update.path_attribute.as_path_segment.as2"))
        segs.append((int(seg["bgp.update.path_attribute.as_path_segment.type"]),
                     [int(a) for a in asns]))
    return as_path_text(segs)


def _message(msg: dict[str, Any]) -> BgpMsg:
    mtype = int(msg["bgp.type"])
    if mtype == 3:
        sub = next((v for k, v in msg.items() if k.startswith("bgp.notify.minor_error")), "0")
        return BgpMsg(3, notification=(int(msg["bgp.notify.major_error"]), int(sub)))
    if mtype != 2:
        return BgpMsg(mtype)
    as_path = as4_path = ""
    next_hops: list[str] = []
    mp_next_hops: list[str] = []
    comms: list[str] = []
    large: list[str] = []
    announced_mp: list[tuple[str, int | None]] = []
    withdrawn_mp: list[tuple[str, int | None]] = []
    attrs = (msg.get("bgp.update.path_attributes") or {}).get("bgp.update.path_attribute")
    for attr in _as_list(attrs):
        code = int(attr["bgp.update.path_attribute.type_code"])
        if code == 2:
            as_path = _segments(attr)
        elif code == 17:
            as4_path = _segments(attr)
        elif code == 3:
            next_hops.append(canon_ip(attr["bgp.update.path_attribute.next_hop"]))
        elif code == 8:
            for k, v in _walk(attr):
                if k == "bgp.update.path_attribute.community" and isinstance(v, dict):
                    comms.append(f"{v['bgp.update.path_attribute.community_as']}:"
                                 f"{v['bgp.update.path_attribute.community_value']}")
                elif k == "bgp.update.path_attribute.community_wellknown":
                    comms.append(community_text(int(v, 16)))
        elif code == 32:
            for tree in _as_list(attr.get("bgp.large_communities_tree")):
                large.append(f"{tree['bgp.large_communities.ga']}:"
                             f"{tree['bgp.large_communities.ldp1']}:{tree['bgp.large_communities.ldp2']}")
        elif code == 14:
            for k, v in _walk(attr.get("bgp.update.path_attribute.mp_reach_nlri.next_hop_tree", {})):
                if isinstance(v, str):
                    mp_next_hops.append(canon_ip(v))
            announced_mp = _prefixes(attr.get("bgp.update.path_attribute.mp_reach_nlri", {}))
        elif code == 15:
            withdrawn_mp = _prefixes(attr.get("bgp.update.path_attribute.mp_unreach_nlri", {}))

    def route(p: str, pid: int | None, nhs: list[str]) -> Route:
        return Route(p, pid, as_path, as4_path, tuple(nhs), tuple(sorted(comms)), tuple(sorted(large)))

    routes = [route(p, pid, next_hops) for p, pid in _prefixes(msg.get("bgp.update.nlri", {}))]
    routes += [route(p, pid, mp_next_hops) for p, pid in announced_mp]
    withdrawn = _prefixes(msg.get("bgp.update.withdrawn_routes", {})) + withdrawn_mp
    return BgpMsg(2, tuple(routes), tuple(withdrawn))


@lru_cache(maxsize=64)   # captures are immutable during a session; results are read-only
def bgp_frames(path: Path, decode_as: Sequence[str] = (), four_octet: bool | None = None,
               extra_prefs: Sequence[str] = ()) -> dict[int, FrameBgp]:
    """frame -> the BGP messages tshark shows in it (reassembled PDUs at the completing frame)."""
    args = _args(path, decode_as, [*BASE_PREFS, asn_pref(four_octet), *extra_prefs])
    out = _run(args + ["-Y", "bgp", "-T", "json", "--no-duplicate-keys"])
    result: dict[int, FrameBgp] = {}
    for pkt in json.loads(out or "[]"):
        layers = pkt["_source"]["layers"]
        frame = int(layers["frame"]["frame.number"])
        msgs = [_message(m) for m in _as_list(layers.get("bgp"))
                if isinstance(m, dict) and "bgp.type" in m]
        if msgs:
            result[frame] = FrameBgp.of(msgs)
    return result


def expert_frames(path: Path, decode_as: Sequence[str] = (), expert_filter: str = "_ws.malformed",
                  four_octet: bool | None = None) -> set[int]:
    """Frames tshark flags with ``expert_filter`` (malformed, BGP expert infos...)."""
    args = _args(path, decode_as, [*BASE_PREFS, asn_pref(four_octet)])
    out = _run(args + ["-Y", expert_filter, "-T", "fields", "-e", "frame.number"])
    return {int(x) for x in out.split()}


# --- packets: link layer and IP facts ----------------------------------------------------------

PACKET_FIELDS = ("frame.number", "frame.time_epoch", "frame.cap_len", "frame.len",
                 "frame.interface_id", "frame.interface_name", "frame.packet_flags_direction",
                 "sll.pkttype", "sll.ifindex", "eth.src", "eth.dst", "ieee8021ad.id", "vlan.id", "ip.src", "ip.dst",
                 "ipv6.src", "ipv6.dst", "ip.proto", "ip.flags.mf", "ip.frag_offset",
                 "ipv6.fraghdr.offset", "ipv6.fraghdr.more", "tcp.srcport", "tcp.dstport",
                 "udp.srcport", "udp.dstport", "arp.opcode", "frame.protocols")


@lru_cache(maxsize=64)   # captures are immutable during a session; results are read-only
def packet_fields(path: Path, decode_as: Sequence[str] = ()) -> dict[int, dict[str, list[str]]]:
    """frame -> {field: [values in dissection order]} for :data:`PACKET_FIELDS`."""
    args = _args(path, decode_as, BASE_PREFS)
    for f in PACKET_FIELDS:
        args += ["-e", f]
    out = _run(args + ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
                       "-E", "aggregator=|"])
    rows = {}
    for line in out.splitlines():
        cols = line.split("\t")
        rec = {f: (v.split("|") if v else []) for f, v in zip(PACKET_FIELDS, cols)}
        rows[int(rec["frame.number"][0])] = rec
    return rows


# --- tunnels and ARP through pyshark ------------------------------------------------------------

def _pyshark_packets(path: Path, decode_as: Sequence[str]) -> Iterator[Any]:
    import pyshark
    import asyncio

    # pyshark drives tshark through asyncio's current loop; asyncio.run() elsewhere in this
    # process (e.g. an SSH collection) leaves none set, so give pyshark a fresh one
    asyncio.set_event_loop(asyncio.new_event_loop())
    mapping = {}
    for d in decode_as:
        selector, proto = d.rsplit(",", 1)
        mapping[selector] = proto
    cap = pyshark.FileCapture(str(path), decode_as=mapping or None, use_json=False,
                              keep_packets=False,
                              override_prefs={"tcp.check_checksum": "FALSE"})
    try:
        yield from cap
    finally:
        cap.close()
        _release_pyshark_loop(cap)


def _release_pyshark_loop(cap: Any) -> None:
    """Undo what pyshark leaves process-wide: it installs a SafeChildWatcher whose SIGCHLD
    handler keeps writing to the finished loop's wake-up socket (every later child exit then
    printed "BlockingIOError" as an unraisable exception once the socket filled)."""
    import asyncio
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # child watchers: deprecated in 3.12
        watcher = asyncio.get_child_watcher()
        if isinstance(watcher, asyncio.SafeChildWatcher):
            watcher.close()                                   # removes its SIGCHLD handler
            asyncio.set_child_watcher(None)
    loop = getattr(cap, "eventloop", None)
    if loop is not None and not loop.is_closed():
        loop.close()
    asyncio.set_event_loop(None)


UPPER_PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "igmp": 2, "sctp": 132,
                   "gre": 47, "esp": 50}


@lru_cache(maxsize=64)   # captures are immutable during a session; results are read-only
def tunnels_and_arp(path: Path, decode_as: Sequence[str] = ()
                    ) -> tuple[dict[int, tuple[TunnelLayer, ...]], dict[int, tuple[ArpFact, int]]]:
    """pyshark (PDML keeps repeated layers apart): per frame the tunnel layers outermost first, and
    the ARP fact with its tunnel depth. Layers after an ICMP error's quote are not live traffic."""
    tunnels: dict[int, tuple[TunnelLayer, ...]] = {}
    arps: dict[int, tuple[ArpFact, int]] = {}
    for pkt in _pyshark_packets(path, decode_as):
        frame = int(pkt.number)
        layers = list(pkt.layers)
        found: list[TunnelLayer] = []
        ip_layer = udp_layer = None
        for i, layer in enumerate(layers):
            name = layer.layer_name
            if name in ("icmp", "icmpv6"):
                break
            if name in ("ip", "ipv6"):
                ip_layer = layer
            elif name == "udp":
                udp_layer = layer
            elif name in ("vxlan", "geneve") and ip_layer is not None and udp_layer is not None:
                inner = layers[i + 1] if i + 1 < len(layers) else None
                after = layers[i + 2] if i + 2 < len(layers) else None
                l4 = layers[i + 3] if i + 3 < len(layers) else None
                isrc = idst = proto = sport = dport = None
                if after is not None and after.layer_name in ("ip", "ipv6"):
                    isrc, idst = canon_ip(after.src), canon_ip(after.dst)
                    # the upper-layer protocol, after any IPv6 extension headers
                    proto = UPPER_PROTOCOLS.get(l4.layer_name if l4 is not None else "") or int(
                        after.proto if after.layer_name == "ip" else after.nxt)
                    if l4 is not None and l4.layer_name in ("tcp", "udp"):
                        sport, dport = int(l4.srcport), int(l4.dstport)
                found.append(TunnelLayer(
                    name, int(str(layer.vni), 0), canon_ip(ip_layer.src), canon_ip(ip_layer.dst),
                    int(udp_layer.dstport),
                    str(inner.src).lower() if inner is not None and inner.layer_name == "eth" else "",
                    str(inner.dst).lower() if inner is not None and inner.layer_name == "eth" else "",
                    isrc, idst, proto, sport, dport))
                ip_layer = udp_layer = None
            elif name == "arp":
                arps[frame] = (ArpFact(int(layer.opcode), str(layer.src_hw_mac).lower(),
                                       canon_ip(layer.src_proto_ipv4), str(layer.dst_hw_mac).lower(),
                                       canon_ip(layer.dst_proto_ipv4)), len(found))
        if found:
            tunnels[frame] = tuple(found)
    return tunnels, arps


def _epoch_ns(text: str) -> int:
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


PKTTYPE_DIRECTION = {0: "in", 1: "in", 2: "in", 3: "in", 4: "out"}
EPB_DIRECTION = {1: "in", 2: "out"}


@lru_cache(maxsize=64)   # captures are immutable during a session; results are read-only
def packet_facts(path: Path, decode_as: Sequence[str] = ()) -> dict[int, dict[str, object]]:
    """frame -> link/IP facts as tshark dissects them (outermost headers)."""
    out: dict[int, dict[str, object]] = {}
    for frame, f in packet_fields(path, decode_as).items():
        first = {k: (v[0] if v else None) for k, v in f.items()}
        protos = (first["frame.protocols"] or "").split(":")
        l3 = next((p for p in protos if p in ("ip", "ipv6", "arp")), None)
        facts: dict[str, object] = dict(
            ts_ns=_epoch_ns(first["frame.time_epoch"] or "0"),
            caplen=int(first["frame.cap_len"] or 0), wirelen=int(first["frame.len"] or 0),
            l3={"ip": "ipv4"}.get(l3, l3) if l3 else None)
        if first["frame.interface_name"]:
            facts["iface_name"] = first["frame.interface_name"]
            facts["capture_iface"] = int(first["frame.interface_id"] or 0)
        if first["sll.pkttype"] is not None:
            facts["pkttype"] = int(first["sll.pkttype"])
            facts["direction"] = PKTTYPE_DIRECTION.get(int(first["sll.pkttype"]))
        elif first["frame.packet_flags_direction"] is not None:
            facts["direction"] = EPB_DIRECTION.get(int(first["frame.packet_flags_direction"], 0))
        if first["sll.ifindex"] is not None:
            facts["ifindex"] = int(first["sll.ifindex"])
        if "eth" in protos[:2]:
            facts["eth_src"], facts["eth_dst"] = first["eth.src"], first["eth.dst"]
        facts["vlan"] = tuple(int(v) for v in f["ieee8021ad.id"] + f["vlan.id"])   # outer tag first
        if l3 == "ip":
            facts["src"], facts["dst"] = canon_ip(first["ip.src"]), canon_ip(first["ip.dst"])
            facts["fragment"] = first["ip.flags.mf"] in ("1", "True") or (first["ip.frag_offset"] or "0") != "0"
        elif l3 == "ipv6":
            facts["src"], facts["dst"] = canon_ip(first["ipv6.src"]), canon_ip(first["ipv6.dst"])
            facts["fragment"] = bool(f["ipv6.fraghdr.offset"] or f["ipv6.fraghdr.more"])
        # ports of the packet itself, not of the one quoted inside an ICMP error
        transport = next((p for p in protos if p in ("tcp", "udp", "icmp", "icmpv6")), None)
        if not facts.get("fragment") and transport in ("tcp", "udp"):
            for proto in ("tcp", "udp"):
                if first[f"{proto}.srcport"] is not None:
                    facts["sport"] = int(first[f"{proto}.srcport"])
                    facts["dport"] = int(first[f"{proto}.dstport"])
                    break
        out[frame] = facts
    return out
