"""BGP UPDATE path attributes (RFC 4271 4.3 / 5, RFC 4760, 6793, 1997, 4360, 8092, 4456).

Contract: ``decode_path_attributes(data, pos, end, as4, assumed, problems)`` walks the path
attribute block ``data[pos:end]`` and returns an :class:`Attributes` whose ``columns`` dict holds
only the attribute columns that are present (keys from ``ATTRIBUTE_COLUMNS``), plus the parsed
MP_REACH_NLRI / MP_UNREACH_NLRI headers (their NLRI stay as offsets into ``data``, decoded by
bgp.py with the session's ADD-PATH context). Problems are appended to ``problems`` as short
reasons; nothing raises on bad input.

Each attribute::

    0                   1
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |O|T|P|E| unused|  Attr. Type   | Length (1 or 2 octets, E = extended length)
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

AS_PATH segments are ``type(1) count(1) count*AS``, AS = 2 octets unless the session negotiated
4-octet AS numbers (``as4``); AS4_PATH is always 4-octet. ``as_path`` is every AS number in wire
order (set and confederation members included); ``as_path_str`` shows the structure:
``65001 65002 {65003,65004}``, confederation sequences as ``(65010 65011)``, sets as ``[..]``;
``as4_path`` / ``as4_path_str`` likewise. ``effective_as_path`` / ``effective_as_path_str`` is the
path a receiver acts on: AS_PATH, with AS4_PATH merged into it when the AS_PATH was 2-octet
(RFC 6793 4.2.3: the leading ASes of AS_PATH the AS4_PATH does not cover, then AS4_PATH; ignored
when longer than AS_PATH, or when an AGGREGATOR that is not AS_TRANS came with AS4_AGGREGATOR);
``as_path_note`` says what was done (merged, ignored, AS_TRANS left in the path). Both paths stay
as they were on the wire.
Prefix-SID, BGP-LS and PMSI_TUNNEL are named TLV by TLV (``prefix_sid``, ``link_state``,
``pmsi_tunnel``, see :mod:`diag.decode.bgp_tlv_attrs`); other attributes that diag does not decode
are listed in ``unknown_attributes`` by name when IANA has one (``'AIGP (type 26) len 11'``),
else as ``'type N len L'``.
When the context is only ``assumed`` (no OPENs seen) and the AS_PATH does not parse as 4-octet but
does as 2-octet, the 2-octet reading is used and reported through ``Attributes.as_octets``.
Lists in ``columns`` are shared by all routes of one UPDATE, and AS_PATH / COMMUNITIES lists by
messages with the same attribute value (bounded caches): treat them as read-only.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from struct import Struct

from diag.decode import bgp_names as names

ATTRIBUTE_COLUMNS: tuple[str, ...] = (
    "next_hop", "next_hop_link_local", "origin", "as_path", "as_path_str", "as4_path",
    "as4_path_str", "med", "local_pref", "atomic_aggregate", "aggregator", "as4_aggregator",
    "communities", "large_communities", "ext_communities", "originator_id", "cluster_list",
    "unknown_attributes", "effective_as_path", "effective_as_path_str", "as_path_note",
    "prefix_sid", "link_state", "pmsi_tunnel",
)

_U16 = Struct(">H")
_U32 = Struct(">I")
_AGG2 = Struct(">H4s")
_AGG4 = Struct(">I4s")
_MP_HEAD = Struct(">HBB")      # AFI, SAFI, next-hop length
_MP_UNREACH_HEAD = Struct(">HB")
# Struct per AS count (a segment holds at most 255 ASes): no format-string building per segment.
_AS2_N = [Struct(f">{n}H") for n in range(256)]
_AS4_N = [Struct(f">{n}I") for n in range(256)]
_SEG_OPEN = {1: "{", 2: "", 3: "(", 4: "["}
_SEG_CLOSE = {1: "}", 2: "", 3: ")", 4: "]"}
_SEG_SEP = {1: ",", 2: " ", 3: " ", 4: ","}

_inet_ntoa = socket.inet_ntoa
_inet_ntop = socket.inet_ntop
_AF_INET6 = socket.AF_INET6
_WELL_KNOWN = names.WELL_KNOWN_COMMUNITIES
# Per attribute type: 1 = well-known (optional bit must be clear), 2 = optional (must be set).
_ATTR_KIND = bytes(2 if t in names.OPTIONAL_ATTRIBUTES else
                   1 if t in names.WELL_KNOWN_ATTRIBUTES else 0 for t in range(256))
# AS_PATH value (and width) -> (AS list, text). Paths repeat across UPDATEs and sessions; the
# lists are shared like all lists in the columns (read-only). Cleared when full.
_AS_PATHS: dict[int, dict[bytes, tuple[list[int], str, bool] | None]] = {2: {}, 4: {}}
_MISSING = object()
_COMMUNITY_LISTS: dict[bytes, list[str]] = {}       # same idea for COMMUNITIES values
_AS_PATH_CACHE_MAX = 16384
_ORIGINS = names.ORIGINS
_MAX_PROBLEMS = 8


@dataclass(slots=True)
class MpReach:
    afi: int
    safi: int
    next_hop: str | None
    next_hop_link_local: str | None
    nlri_start: int
    nlri_end: int


@dataclass(slots=True)
class MpUnreach:
    afi: int
    safi: int
    nlri_start: int
    nlri_end: int


@dataclass(slots=True)
class Attributes:
    columns: dict
    mp_reach: MpReach | None = None
    mp_unreach: MpUnreach | None = None
    as_octets: int | None = None     # width used for AS_PATH, None when there is no AS_PATH
    seen: int = 0                    # bit N set: an attribute of type N (< 64) was present


def ipv6_str(raw: bytes) -> str:
    """Canonical IPv6 text as ``str(ipaddress.IPv6Address)`` prints it (RFC 5952)."""
    text = _inet_ntop(_AF_INET6, raw)
    if "." in text:          # glibc prints ::ffff:a.b.c.d / ::a.b.c.d; ipaddress prints hex groups
        import ipaddress
        return str(ipaddress.IPv6Address(raw))
    return text


def _note(problems: list[str], reason: str) -> None:
    if len(problems) < _MAX_PROBLEMS:
        problems.append(reason)


def parse_as_path(data: bytes, pos: int, end: int, width: int) -> tuple[list[int], str] | None:
    """AS numbers and display string, or None when segments do not tile ``data[pos:end]``."""
    structs = _AS4_N if width == 4 else _AS2_N
    path: list[int] = []
    parts: list[str] = []
    while pos < end:
        if pos + 2 > end:
            return None
        seg_type = data[pos]
        count = data[pos + 1]
        pos += 2
        seg_end = pos + count * width
        if count == 0 or seg_end > end or seg_type not in _SEG_OPEN:
            return None
        ases = structs[count].unpack_from(data, pos)
        pos = seg_end
        path.extend(ases)
        if seg_type == 2:
            parts.append(" ".join(map(str, ases)))
        else:
            parts.append(_SEG_OPEN[seg_type] + _SEG_SEP[seg_type].join(map(str, ases))
                         + _SEG_CLOSE[seg_type])
    return path, " ".join(parts)


def _cached_as_path(data: bytes, pos: int, end: int,
                    width: int) -> tuple[list[int], str, bool] | None:
    """parse_as_path, plus whether AS_TRANS is in the path, cached by value."""
    cache = _AS_PATHS[width]
    key = data[pos:end]
    parsed = cache.get(key, _MISSING)
    if parsed is _MISSING:
        parsed = parse_as_path(data, pos, end, width)
        if parsed is not None:
            parsed = (*parsed, names.AS_TRANS in parsed[0])
        if len(cache) >= _AS_PATH_CACHE_MAX:
            cache.clear()
        cache[key] = parsed
    return parsed


def _communities(raw: bytes) -> list[str]:
    out = _COMMUNITY_LISTS.get(raw)
    if out is None:
        out = [_WELL_KNOWN.get(value) or f"{value >> 16}:{value & 0xFFFF}"
               for (value,) in _U32.iter_unpack(raw)]
        if len(_COMMUNITY_LISTS) >= _AS_PATH_CACHE_MAX:
            _COMMUNITY_LISTS.clear()
        _COMMUNITY_LISTS[raw] = out
    return out


def _ext_community(raw: bytes) -> str:
    kind = raw[0] & 0x3F          # drop the IANA-authority and non-transitive bits (RFC 4360 3)
    if raw[0] == 0x03 and raw[1] == 0x0C:       # RFC 9012 4.1 encapsulation
        tunnel = _U16.unpack_from(raw, 6)[0]
        return f"encapsulation {names.TUNNEL_TYPES.get(tunnel) or tunnel}"
    if raw[0] == 0x06:                          # EVPN (RFC 7432 7.5-7.7, RFC 9135 8.1)
        if raw[1] == 0x00:
            sticky = " sticky" if raw[2] & 1 else ""
            return f"mac-mobility seq {_U32.unpack_from(raw, 4)[0]}{sticky}"
        if raw[1] == 0x01:
            return f"esi-label {(raw[5] << 16 | raw[6] << 8 | raw[7]) >> 4}"
        if raw[1] == 0x02:
            return f"es-import-rt {raw[2:8].hex(':')}"
        if raw[1] == 0x03:
            return f"router-mac {raw[2:8].hex(':')}"
    label = names.EXT_COMMUNITY_SUBTYPES.get(raw[1]) if raw[0] < 0x40 else None
    if label is not None:
        if kind == 0x00:          # 2-octet AS specific
            return f"{label} {_U16.unpack_from(raw, 2)[0]}:{_U32.unpack_from(raw, 4)[0]}"
        if kind == 0x01:          # IPv4 address specific
            return f"{label} {_inet_ntoa(raw[2:6])}:{_U16.unpack_from(raw, 6)[0]}"
        if kind == 0x02:          # 4-octet AS specific (RFC 5668)
            return f"{label} {_U32.unpack_from(raw, 2)[0]}:{_U16.unpack_from(raw, 6)[0]}"
    return raw.hex()


def _next_hop(raw: bytes) -> tuple[str | None, str | None]:
    """MP_REACH next hop by length: v4, v6, v6+link-local, and the VPN forms with an 8-octet RD."""
    n = len(raw)
    if n == 4:
        return _inet_ntoa(raw), None
    if n == 16:
        return ipv6_str(raw), None
    if n == 32:
        return ipv6_str(raw[:16]), ipv6_str(raw[16:])
    if n == 12:
        return _inet_ntoa(raw[8:]), None
    if n == 24:
        return ipv6_str(raw[8:]), None
    if n == 48:
        return ipv6_str(raw[8:24]), ipv6_str(raw[32:])
    return (raw.hex() if n else None), None


def decode_path_attributes(data: bytes, pos: int, end: int, as4: bool, assumed: bool,
                           problems: list[str]) -> Attributes:
    cols: dict = {}
    result = Attributes(cols)
    seen = 0                      # bitmask of attribute types below 64, for duplicate detection
    unknown: list[str] | None = None
    as_path_at = as4_path_at = None        # (start, end) of the AS_PATH / AS4_PATH values
    as_trans = False
    while pos < end:
        if pos + 3 > end:
            _note(problems, "attribute header truncated")
            break
        flags = data[pos]
        atype = data[pos + 1]
        if flags & 0x10:
            if pos + 4 > end:
                _note(problems, "attribute header truncated")
                break
            length = (data[pos + 2] << 8) | data[pos + 3]
            pos += 4
        else:
            length = data[pos + 2]
            pos += 3
        vend = pos + length
        if vend > end:
            _note(problems, f"attribute {atype} length {length} past end")
            break
        if atype < 64:
            bit = 1 << atype
            if seen & bit:
                _note(problems, f"duplicate attribute {atype}")
                pos = vend
                continue
            seen |= bit
        kind = _ATTR_KIND[atype]
        if kind == 1:
            if flags & 0x80:
                _note(problems,
                      f"attribute {atype} flags 0x{flags:02x}: well-known marked optional")
        elif kind == 2 and not flags & 0x80:
            _note(problems, f"attribute {atype} flags 0x{flags:02x}: optional not marked")

        if atype == 1:                                   # ORIGIN
            if length == 1 and data[pos] < 3:
                cols["origin"] = _ORIGINS[data[pos]]
            else:
                _note(problems, "bad ORIGIN")
        elif atype == 2:                                 # AS_PATH
            width = 4 if as4 else 2
            parsed = _cached_as_path(data, pos, vend, width)
            if parsed is None and assumed and as4:
                parsed = _cached_as_path(data, pos, vend, 2)
                width = 2
            if parsed is None:
                _note(problems, "malformed AS_PATH")
            else:
                cols["as_path"], cols["as_path_str"], as_trans = parsed
                result.as_octets = width
                as_path_at = (pos, vend)
        elif atype == 3:                                 # NEXT_HOP
            if length == 4:
                cols["next_hop"] = _inet_ntoa(data[pos:vend])
            else:
                _note(problems, f"NEXT_HOP length {length}")
        elif atype == 4 or atype == 5:                   # MULTI_EXIT_DISC, LOCAL_PREF
            if length == 4:
                cols["med" if atype == 4 else "local_pref"] = _U32.unpack_from(data, pos)[0]
            else:
                _note(problems, f"{names.ATTRIBUTE_NAMES[atype]} length {length}")
        elif atype == 6:                                 # ATOMIC_AGGREGATE
            cols["atomic_aggregate"] = True
            if length:
                _note(problems, f"ATOMIC_AGGREGATE length {length}")
        elif atype == 7 or atype == 18:                  # AGGREGATOR, AS4_AGGREGATOR
            key = "aggregator" if atype == 7 else "as4_aggregator"
            if length == 8:
                asn, ip = _AGG4.unpack_from(data, pos)
                if atype == 7 and not as4 and not assumed:
                    _note(problems, "AGGREGATOR length 8 in 2-octet AS session")
            elif length == 6 and atype == 7:
                asn, ip = _AGG2.unpack_from(data, pos)
                if as4 and not assumed:
                    _note(problems, "AGGREGATOR length 6 in 4-octet AS session")
            else:
                _note(problems, f"{names.ATTRIBUTE_NAMES[atype]} length {length}")
                pos = vend
                continue
            cols[key] = f"{asn}:{_inet_ntoa(ip)}"
        elif atype == 8:                                 # COMMUNITIES
            if length % 4:
                _note(problems, f"COMMUNITIES length {length}")
            cols["communities"] = _communities(data[pos:vend - length % 4])
        elif atype == 9:                                 # ORIGINATOR_ID
            if length == 4:
                cols["originator_id"] = _inet_ntoa(data[pos:vend])
            else:
                _note(problems, f"ORIGINATOR_ID length {length}")
        elif atype == 10:                                # CLUSTER_LIST
            if length % 4:
                _note(problems, f"CLUSTER_LIST length {length}")
            cols["cluster_list"] = [_inet_ntoa(data[p:p + 4])
                                    for p in range(pos, vend - 3, 4)]
        elif atype == 14:                                # MP_REACH_NLRI (RFC 4760 3)
            if length < 5:
                _note(problems, f"MP_REACH_NLRI length {length}")
            else:
                afi, safi, nh_len = _MP_HEAD.unpack_from(data, pos)
                nh_start = pos + 4
                nlri_start = nh_start + nh_len + 1       # +1: the reserved octet
                if nlri_start > vend:
                    _note(problems, "MP_REACH_NLRI next hop past end")
                else:
                    nh, ll = _next_hop(data[nh_start:nh_start + nh_len])
                    result.mp_reach = MpReach(afi, safi, nh, ll, nlri_start, vend)
        elif atype == 15:                                # MP_UNREACH_NLRI (RFC 4760 4)
            if length < 3:
                _note(problems, f"MP_UNREACH_NLRI length {length}")
            else:
                afi, safi = _MP_UNREACH_HEAD.unpack_from(data, pos)
                result.mp_unreach = MpUnreach(afi, safi, pos + 3, vend)
        elif atype == 16:                                # EXTENDED_COMMUNITIES (RFC 4360)
            if length % 8:
                _note(problems, f"EXTENDED_COMMUNITIES length {length}")
            cols["ext_communities"] = [_ext_community(data[p:p + 8])
                                       for p in range(pos, vend - 7, 8)]
        elif atype == 17:                                # AS4_PATH (RFC 6793), always 4-octet
            parsed = parse_as_path(data, pos, vend, 4)
            if parsed is None:
                _note(problems, "malformed AS4_PATH")
            else:
                cols["as4_path"], cols["as4_path_str"] = parsed
                as4_path_at = (pos, vend)
        elif atype == 32:                                # LARGE_COMMUNITY (RFC 8092)
            if length % 12:
                _note(problems, f"LARGE_COMMUNITY length {length}")
            vals = _U32.iter_unpack(data[pos:vend - length % 12])
            cols["large_communities"] = [f"{a[0]}:{b[0]}:{c[0]}"
                                         for a, b, c in zip(vals, vals, vals)]
        elif atype == 40 or atype == 29 or atype == 22:   # PREFIX_SID, BGP-LS, PMSI_TUNNEL
            from diag.decode import bgp_tlv_attrs as tlv   # rare: loaded when first met

            value = data[pos:vend]
            if atype == 40:
                cols["prefix_sid"] = tlv.prefix_sid(value)
            elif atype == 29:
                cols["link_state"] = tlv.link_state(value)
            else:
                cols["pmsi_tunnel"] = tlv.pmsi_tunnel(value)
        else:
            if unknown is None:
                unknown = cols["unknown_attributes"] = []
            name = names.ATTRIBUTE_NAMES.get(atype)
            unknown.append(f"{name} (type {atype}) len {length}" if name else
                           f"type {atype} len {length}")
        pos = vend
    result.seen = seen
    if as_path_at is not None:
        if as_trans or as4_path_at is not None:
            _effective_path(data, as_path_at, as4_path_at, result.as_octets, cols)
        else:                                            # the common case: the path as it is
            cols["effective_as_path"] = cols["as_path"]
            cols["effective_as_path_str"] = cols["as_path_str"]
    return result


def _segments(data: bytes, pos: int, end: int, width: int) -> list[tuple[int, tuple[int, ...]]]:
    """(segment type, ASes) of a path that parse_as_path accepted."""
    structs = _AS4_N if width == 4 else _AS2_N
    out = []
    while pos < end:
        count = data[pos + 1]
        out.append((data[pos], structs[count].unpack_from(data, pos + 2)))
        pos += 2 + count * width
    return out


def _path_length(segments: list[tuple[int, tuple[int, ...]]]) -> int:
    """RFC 4271 9.1.2.2 / RFC 6793 4.2.3: a sequence counts its ASes, a set one, confederation
    segments nothing."""
    return sum(len(a) if t == 2 else 1 if t == 1 else 0 for t, a in segments)


def _path_text(segments: list[tuple[int, tuple[int, ...]]]) -> str:
    return " ".join(" ".join(map(str, a)) if t == 2 else
                    _SEG_OPEN[t] + _SEG_SEP[t].join(map(str, a)) + _SEG_CLOSE[t]
                    for t, a in segments)


def _effective_path(data: bytes, as_path_at: tuple[int, int], as4_path_at: tuple[int, int] | None,
                    width: int | None, cols: dict) -> None:
    """The path a receiver acts on (RFC 6793 4.2.3) into ``effective_as_path(_str)``, and
    ``as_path_note`` saying how it was made."""
    segments = _segments(data, *as_path_at, width or 4)
    notes = []
    if as4_path_at is not None:
        as4 = [s for s in _segments(data, *as4_path_at, 4) if s[0] in (1, 2)]
        aggregator = cols.get("aggregator")
        if width == 4:
            notes.append("AS4_PATH ignored: the AS_PATH is already 4-octet (RFC 6793 4.1)")
        elif (aggregator is not None and "as4_aggregator" in cols
              and not aggregator.startswith(f"{names.AS_TRANS}:")):
            notes.append("AS4_PATH ignored: AGGREGATOR is not AS_TRANS (RFC 6793 4.2.3)")
        elif _path_length(as4) > _path_length(segments):
            notes.append("AS4_PATH ignored: longer than AS_PATH (RFC 6793 4.2.3)")
        else:
            need = _path_length(segments) - _path_length(as4)
            head = []
            for seg_type, ases in segments:
                if need <= 0:
                    break
                if seg_type == 2:
                    head.append((2, ases[:need]))
                    need -= len(ases[:need])
                else:
                    head.append((seg_type, ases))
                    need -= seg_type == 1
            replaced = any(names.AS_TRANS in a for _t, a in segments)
            segments = head + as4
            notes.append("AS4_PATH merged into AS_PATH (RFC 6793 4.2.3)"
                         + (": AS_TRANS replaced" if replaced else ""))
    flat = [asn for _t, ases in segments for asn in ases]
    if names.AS_TRANS in flat:
        notes.append("AS_TRANS (23456) in the path: a 4-octet AS that a 2-octet-only speaker "
                     "could not name")
    cols["effective_as_path"] = flat
    cols["effective_as_path_str"] = _path_text(segments)
    cols["as_path_note"] = "; ".join(notes)
