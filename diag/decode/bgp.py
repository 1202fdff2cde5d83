"""BGP message decoding: one complete message in, one row (+ one row per prefix) out.

RFC 4271 (BGP-4), 4760 (MP-BGP), 6793 (4-octet AS), 7911 (ADD-PATH), 1997/8092/4360
(communities), 2918/7313 (ROUTE-REFRESH, enhanced), 4724 (End-of-RIB), 8538 (Hard Reset),
9003 (shutdown communication), 8654 (extended messages), 9072 (extended OPEN parameters).

Every message starts with the 19-octet header (RFC 4271 4.1)::

    +--------------------------------+-----------+--------+
    |     Marker (16 octets, all 1s) | Length(2) | Type(1)|
    +--------------------------------+-----------+--------+

Contract (called by the frame decoder, which does the TCP framing):

* ``decode_message(msg, ctx) -> Decoded`` -- ``msg`` is one message including its header;
  ``ctx`` (:class:`Direction`) says what the session negotiated for this direction. It never
  raises on bad input: it decodes what it can and sets ``row["malformed"]`` to a short reason
  (several joined by ``"; "``). Fewer than 19 octets give ``type`` None and ``type_name``
  ``'TRUNCATED'``; an unknown type gives ``'UNKNOWN(n)'``. ``ctx`` None means "assumed".
* ``Decoded.row`` -- one dict with every key of ``MESSAGE_COLUMNS`` (absent values are None);
  ``Decoded.routes`` -- one dict per prefix announced/withdrawn with every key of
  ``ROUTE_COLUMNS``; ``Decoded.open`` -- :class:`OpenInfo` for an OPEN, else None.
* ``negotiate(local_open, remote_open) -> Direction`` -- context for messages sent by ``local``.

Row example (UPDATE)::

    {'type': 2, 'type_name': 'UPDATE', 'length': 53, 'malformed': None, 'n_withdrawn': 0,
     'n_announced': 1, 'eor': None, 'origin': 'IGP', 'as_path': [65000, 65002],
     'as_path_str': '65000 65002', 'next_hop': '198.51.100.12', ...}

Route example: ``{'action': 'announce', 'afi': 'ipv4', 'safi': 'unicast',
'prefix': '203.0.113.64/26', 'path_id': None, 'nlri_raw': None, 'next_hop': '198.51.100.12',
'as_path': [65000, 65002], ...}``. Prefixes of AFI/SAFIs other than IPv4/IPv6 unicast and
multicast are not split: one route row per MP attribute carries the whole NLRI in ``nlri_raw``
(hex) with ``prefix`` None. Withdrawn rows carry no attributes. Lists are shared between the
routes of one message and, through small caches, between messages: treat them as read-only.

Message columns by type: OPEN ``open_version, open_my_as`` (the 4-octet AS of capability 65
when present), ``open_hold_time, open_bgp_id, open_capabilities`` (names such as
``'multiprotocol ipv4/unicast'``, ``'4-octet-as 65000'``, ``'add-path ipv4/unicast receive'``,
``'graceful-restart'``, unknown ones ``'capability-N'``), ``open_fqdn, open_software_version``;
NOTIFICATION ``notify_code, notify_subcode, notify_name, notify_subname, notify_text`` (RFC 9003
shutdown communication), ``notify_cause`` (the error a Hard Reset carries, RFC 8538),
``notify_data`` (hex); ROUTE-REFRESH ``refresh_afi, refresh_safi, refresh_subtype`` (0 normal,
1 BoRR, 2 EoRR) and ``refresh_subtype_name``; UPDATE ``n_withdrawn, n_announced, eor``
(``'ipv4/unicast'`` for an empty UPDATE, the AFI/SAFI of an empty MP_UNREACH_NLRI -- RFC 4724 2;
a withdraw-only UPDATE is not an End-of-RIB) plus the attribute columns of the routes
(:data:`diag.decode.bgp_attrs.ATTRIBUTE_COLUMNS`).

``ctx_note`` (message column) says when decoding had to depart from the context: the context
was assumed (no OPENs seen) and the AS_PATH only made sense as 2-octet, or NLRI only made sense
with ADD-PATH path identifiers (it did not parse without them, or gave the same default route
twice, which is what small path ids read as prefixes look like).
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from struct import Struct

from diag.decode import bgp_names as names
from diag.decode.bgp_attrs import ATTRIBUTE_COLUMNS, decode_path_attributes, ipv6_str
from diag.decode.bgp_families import FAMILY_COLUMNS, family_routes, splits
from diag.decode.nlri import scan

__all__ = [
    "Direction", "OpenInfo", "Decoded", "negotiate", "decode_message",
    "MESSAGE_COLUMNS", "ROUTE_COLUMNS", "HEADER_LEN", "MAX_MESSAGE_LEN",
]

HEADER_LEN = 19
MAX_MESSAGE_LEN = 65535          # RFC 8654 extended messages; 4096 without the capability
MARKER = b"\xff" * 16

MESSAGE_COLUMNS: tuple[str, ...] = (
    "type", "type_name", "length", "malformed",
    "open_version", "open_my_as", "open_hold_time", "open_bgp_id", "open_capabilities",
    "open_fqdn", "open_software_version",
    "notify_code", "notify_subcode", "notify_name", "notify_subname", "notify_text",
    "notify_cause", "notify_data",
    "refresh_afi", "refresh_safi", "refresh_subtype", "refresh_subtype_name",
    "n_withdrawn", "n_announced", "eor", "ctx_note",
) + ATTRIBUTE_COLUMNS

ROUTE_COLUMNS: tuple[str, ...] = (
    "action", "afi", "safi", "prefix", "nlri_raw", "path_id",
) + FAMILY_COLUMNS + ATTRIBUTE_COLUMNS

_U16 = Struct(">H")
_U32 = Struct(">I")
_HEADER = Struct(">16sHB")
_OPEN = Struct(">BHH4sB")
_NOTIFY = Struct(">BB")
_REFRESH = Struct(">HBB")
_CAP_MP = Struct(">HxB")
_AFI_SAFI_MODE = Struct(">HBB")
_EXT_NH = Struct(">HHH")

_inet_ntoa = socket.inet_ntoa
_PREFIX_CACHE_SIZE = 1 << 16
_PREFIX_TEXT_V4: dict[bytes, str] = {}
_PREFIX_TEXT_V6: dict[bytes, str] = {}
_ZERO_PAD4 = [b"\0" * (4 - n) for n in range(5)]
_ZERO_PAD16 = [b"\0" * (16 - n) for n in range(17)]

_MESSAGE_TEMPLATE = dict.fromkeys(MESSAGE_COLUMNS)
_ROUTE_TEMPLATE = dict.fromkeys(ROUTE_COLUMNS)
_ROUTE_TEMPLATE["atomic_aggregate"] = False
_MIN_LENGTH = {1: 29, 2: 23, 3: 21, 4: 19, 5: 23}
_TYPE_NAMES = names.MESSAGE_TYPES
_IPV4 = "ipv4"
_UNICAST = "unicast"
_MAX_PROBLEMS = 8
_NEEDS_ORIGIN_AS_PATH = 1 << 1 | 1 << 2      # attribute type bits (Attributes.seen)
_NEEDS_NEXT_HOP = _NEEDS_ORIGIN_AS_PATH | 1 << 3
_DEFAULT_V4 = (None, "0.0.0.0/0")
_DEFAULT_V6 = (None, "::/0")


@dataclass(frozen=True)
class Direction:
    """Negotiated context for messages sent in one direction of a session."""

    as4: bool = True                       # AS numbers are 4 octets (RFC 6793)
    addpath: frozenset = frozenset()       # {(afi, safi)} whose NLRI carry a path id (RFC 7911)
    assumed: bool = True                   # not learned from both OPENs


@dataclass(frozen=True)
class OpenInfo:
    """What one OPEN advertised (RFC 4271 4.2, RFC 5492 capabilities)."""

    version: int
    my_as: int                             # 4-octet AS from capability 65 when present
    hold_time: int
    bgp_id: str
    capabilities: tuple[str, ...] = ()
    as4: bool = False
    addpath: dict = field(default_factory=dict, hash=False)   # {(afi, safi): 1 rx | 2 tx | 3}
    multiprotocol: tuple[tuple[int, int], ...] = ()
    route_refresh: bool = False
    enhanced_route_refresh: bool = False
    graceful_restart: bool = False
    graceful_restart_time: int | None = None
    graceful_restart_restarting: bool = False                 # R bit
    long_lived_graceful_restart: bool = False
    extended_message: bool = False
    extended_nexthop: tuple[tuple[int, int, int], ...] = ()   # (nlri afi, nlri safi, nh afi)
    fqdn: str | None = None
    software_version: str | None = None
    role: str | None = None
    my_as_field: int = 0                   # the 2-octet "My AS" field (23456 = AS_TRANS)


@dataclass(slots=True)
class Decoded:
    """One decoded message.

    ``groups`` holds the routes compactly: ``(base, prefixes)`` pairs where ``base`` is a route
    dict (every key of ``ROUTE_COLUMNS``; ``prefix``/``path_id`` None) shared by the
    ``(path_id, prefix)`` entries of ``prefixes`` -- the frame decoder expands them column-wise.
    ``routes`` expands them into one dict per prefix.
    """

    row: dict
    groups: list[tuple[dict, list[tuple[int | None, str | None]]]]
    open: OpenInfo | None = None

    @property
    def routes(self) -> list[dict]:
        out = []
        for base, prefixes in self.groups:
            for path_id, prefix in prefixes:
                r = base.copy()
                r["prefix"] = prefix
                r["path_id"] = path_id
                out.append(r)
        return out


_ASSUMED = Direction()


def negotiate(local: OpenInfo | None, remote: OpenInfo | None) -> Direction:
    """Context for messages sent BY ``local`` TO ``remote``."""
    if local is None or remote is None:
        return Direction()
    addpath = frozenset(
        fam for fam, mode in local.addpath.items()
        if mode & 2 and remote.addpath.get(fam, 0) & 1
    )
    return Direction(as4=local.as4 and remote.as4, addpath=addpath, assumed=False)


def _note(problems: list[str], reason: str) -> None:
    if len(problems) < _MAX_PROBLEMS:
        problems.append(reason)


# --- header --------------------------------------------------------------------------------


def decode_message(msg: bytes | bytearray | memoryview, ctx: Direction | None) -> Decoded:
    """Decode one complete BGP message (header included). Never raises on bad input."""
    data = bytes(msg) if not isinstance(msg, bytes) else msg
    if ctx is None:
        ctx = _ASSUMED
    row = _MESSAGE_TEMPLATE.copy()
    size = len(data)
    if size < HEADER_LEN:
        row["type_name"] = "TRUNCATED"
        row["length"] = size
        row["malformed"] = f"too short ({size} bytes, header is 19)"
        return Decoded(row, [])
    marker, length, mtype = _HEADER.unpack_from(data)
    row["type"] = mtype
    row["length"] = length
    row["type_name"] = _TYPE_NAMES.get(mtype) or f"UNKNOWN({mtype})"
    problems: list[str] = []
    if marker != MARKER:
        _note(problems, "marker not all ones")
    end = size
    if length != size:
        _note(problems, f"length field {length} but message has {size} bytes")
        if HEADER_LEN <= length < size:
            end = length              # trust a shorter length: the rest belongs to something else
    minimum = _MIN_LENGTH.get(mtype)
    routes: list[tuple[dict, list]] = []
    info = None
    if minimum is None:
        _note(problems, f"unknown message type {mtype}")
    elif end < minimum:
        _note(problems, f"{row['type_name']} too short ({end} bytes, minimum {minimum})")
    elif mtype == 2:
        routes = _decode_update(data, end, ctx, row, problems)
        if problems:
            # RFC 7606 section 2: a receiver treats the NLRI of a malformed UPDATE as withdrawn
            for base, _prefixes in routes:
                if base["action"] == "announce":
                    base["action"] = "treat-as-withdraw"
    elif mtype == 4:
        if end != HEADER_LEN:
            _note(problems, f"KEEPALIVE length {end}")
    elif mtype == 1:
        info = _decode_open(data, end, row, problems)
    elif mtype == 3:
        _decode_notification(data, end, row, problems)
    else:
        _decode_route_refresh(data, end, row, problems)
    if problems:
        row["malformed"] = "; ".join(problems)
    return Decoded(row, routes, info)


# --- OPEN (RFC 4271 4.2, RFC 5492, RFC 9072) ---------------------------------------------------


def _decode_open(data: bytes, end: int, row: dict, problems: list[str]) -> OpenInfo:
    version, my_as_field, hold_time, bgp_id_raw, opt_len = _OPEN.unpack_from(data, HEADER_LEN)
    pos = HEADER_LEN + 10
    param_len_size = 1
    if opt_len == 255 and pos < end and data[pos] == 255:     # RFC 9072 extended parameters
        if pos + 3 > end:
            _note(problems, "extended optional parameters header truncated")
            opt_len = 0
        else:
            opt_len = _U16.unpack_from(data, pos + 1)[0]
            pos += 3
            param_len_size = 2
    params_end = pos + opt_len
    if params_end > end:
        _note(problems, f"optional parameters length {opt_len} past end")
        params_end = end
    elif params_end < end:
        _note(problems, f"{end - params_end} bytes after optional parameters")
    caps: dict = {"names": [], "addpath": {}, "mp": [], "ext_nh": []}
    while pos < params_end:
        if pos + 1 + param_len_size > params_end:
            _note(problems, "optional parameter header truncated")
            break
        ptype = data[pos]
        if param_len_size == 1:
            plen = data[pos + 1]
        else:
            plen = _U16.unpack_from(data, pos + 1)[0]
        pos += 1 + param_len_size
        pend = pos + plen
        if pend > params_end:
            _note(problems, f"optional parameter {ptype} length {plen} past end")
            break
        if ptype == 2:
            _decode_capabilities(data, pos, pend, caps, problems)
        else:
            caps["names"].append(f"param-{ptype}")
        pos = pend
    if hold_time in (1, 2):
        _note(problems, f"hold time {hold_time} (must be 0 or >= 3)")
    my_as = caps.get("as4_number", my_as_field)
    bgp_id = _inet_ntoa(bgp_id_raw)
    cap_names = caps["names"]
    row["open_version"] = version
    row["open_my_as"] = my_as
    row["open_hold_time"] = hold_time
    row["open_bgp_id"] = bgp_id
    row["open_capabilities"] = cap_names
    row["open_fqdn"] = caps.get("fqdn")
    row["open_software_version"] = caps.get("software_version")
    return OpenInfo(
        version=version, my_as=my_as, hold_time=hold_time, bgp_id=bgp_id,
        capabilities=tuple(cap_names), as4="as4_number" in caps, addpath=caps["addpath"],
        multiprotocol=tuple(caps["mp"]), route_refresh=bool(caps.get("route_refresh")),
        enhanced_route_refresh=bool(caps.get("enhanced_route_refresh")),
        graceful_restart=bool(caps.get("gr")), graceful_restart_time=caps.get("gr_time"),
        graceful_restart_restarting=bool(caps.get("gr_restarting")),
        long_lived_graceful_restart=bool(caps.get("llgr")),
        extended_message=bool(caps.get("extended_message")),
        extended_nexthop=tuple(caps["ext_nh"]), fqdn=caps.get("fqdn"),
        software_version=caps.get("software_version"), role=caps.get("role"),
        my_as_field=my_as_field,
    )


def _short_string(data: bytes, pos: int, end: int) -> tuple[str, int] | None:
    """A one-octet-length-prefixed string at ``pos`` and the position after it."""
    if pos >= end or pos + 1 + data[pos] > end:
        return None
    n = data[pos]
    return data[pos + 1:pos + 1 + n].decode("utf-8", "replace"), pos + 1 + n


def _decode_capabilities(data: bytes, pos: int, end: int, caps: dict,
                         problems: list[str]) -> None:
    out: list[str] = caps["names"]
    while pos < end:
        if pos + 2 > end:
            _note(problems, "capability header truncated")
            return
        code = data[pos]
        clen = data[pos + 1]
        pos += 2
        cend = pos + clen
        if cend > end:
            _note(problems, f"capability {code} length {clen} past end")
            return
        name = names.capability_name(code)
        if code == 1:
            if clen == 4:
                afi, safi = _CAP_MP.unpack_from(data, pos)
                caps["mp"].append((afi, safi))
                name = f"multiprotocol {names.family_name(afi, safi)}"
            else:
                _note(problems, f"multiprotocol capability length {clen}")
            out.append(name)
        elif code == 65:
            if clen == 4:
                asn = _U32.unpack_from(data, pos)[0]
                caps["as4_number"] = asn
                name = f"4-octet-as {asn}"
            else:
                _note(problems, f"4-octet-as capability length {clen}")
            out.append(name)
        elif code == 69:
            if clen % 4 or clen == 0:
                _note(problems, f"add-path capability length {clen}")
                out.append(name)
            for p in range(pos, cend - 3, 4):
                afi, safi, mode = _AFI_SAFI_MODE.unpack_from(data, p)
                caps["addpath"][(afi, safi)] = mode
                mode_name = names.ADDPATH_MODES.get(mode) or f"mode-{mode}"
                out.append(f"add-path {names.family_name(afi, safi)} {mode_name}")
        else:
            out.append(name)
            if code == 2 or code == 128:
                caps["route_refresh"] = True
            elif code == 70:
                caps["enhanced_route_refresh"] = True
            elif code == 64:
                if clen >= 2:
                    head = _U16.unpack_from(data, pos)[0]
                    caps["gr_time"] = head & 0x0FFF
                    caps["gr_restarting"] = bool(head & 0x8000)
                else:
                    _note(problems, f"graceful-restart capability length {clen}")
                caps["gr"] = True
            elif code == 71:
                caps["llgr"] = True
            elif code == 6:
                caps["extended_message"] = True
            elif code == 5:
                for p in range(pos, cend - 5, 6):
                    caps["ext_nh"].append(_EXT_NH.unpack_from(data, p))
            elif code == 9 and clen == 1:
                caps["role"] = names.BGP_ROLES.get(data[pos]) or f"role-{data[pos]}"
            elif code == 73:
                host = _short_string(data, pos, cend)
                if host is not None:
                    domain = _short_string(data, host[1], cend)
                    fqdn = host[0]
                    if domain is not None and domain[0]:
                        fqdn = f"{fqdn}.{domain[0]}"
                    caps["fqdn"] = fqdn
            elif code == 75:
                version = _short_string(data, pos, cend)
                if version is not None:
                    caps["software_version"] = version[0]
        pos = cend


# --- NOTIFICATION (RFC 4271 4.5, RFC 9003, RFC 8538) --------------------------------------------


def _decode_notification(data: bytes, end: int, row: dict, problems: list[str]) -> None:
    code, subcode = _NOTIFY.unpack_from(data, HEADER_LEN)
    payload = data[HEADER_LEN + 2:end]
    row["notify_code"] = code
    row["notify_subcode"] = subcode
    row["notify_name"] = names.notification_name(code)
    row["notify_subname"] = names.notification_subname(code, subcode)
    row["notify_data"] = payload.hex()
    if code != names.CEASE:
        return
    if subcode == names.HARD_RESET and len(payload) >= 2:
        # RFC 8538 3: the data field is the NOTIFICATION that caused the hard reset.
        inner_code, inner_sub = payload[0], payload[1]
        row["notify_cause"] = (f"{names.notification_name(inner_code)}/"
                               f"{names.notification_subname(inner_code, inner_sub)}")
        code, subcode, payload = inner_code, inner_sub, payload[2:]
        if code != names.CEASE:
            return
    if subcode in names.SHUTDOWN_COMMUNICATION_SUBCODES and payload:
        n = payload[0]
        if 1 + n > len(payload):
            _note(problems, f"shutdown communication length {n} past end")
            n = len(payload) - 1
        text = payload[1:1 + n]
        try:
            row["notify_text"] = text.decode("utf-8")
        except UnicodeDecodeError:
            row["notify_text"] = text.decode("utf-8", "replace")
            _note(problems, "shutdown communication not UTF-8")


# --- ROUTE-REFRESH (RFC 2918, RFC 7313) ---------------------------------------------------------


def _decode_route_refresh(data: bytes, end: int, row: dict, problems: list[str]) -> None:
    afi, subtype, safi = _REFRESH.unpack_from(data, HEADER_LEN)
    row["refresh_afi"] = names.afi_name(afi)
    row["refresh_safi"] = names.safi_name(safi)
    row["refresh_subtype"] = subtype
    row["refresh_subtype_name"] = names.REFRESH_SUBTYPES.get(subtype) or f"subtype-{subtype}"
    # RFC 7313 5: BoRR/EoRR must be exactly 23 octets; a normal refresh may carry ORFs (RFC 5291).
    if subtype in (1, 2) and end != 23:
        _note(problems, f"ROUTE-REFRESH {row['refresh_subtype_name']} length {end}")


# --- UPDATE (RFC 4271 4.3, RFC 4760, RFC 7911, RFC 4724) ----------------------------------------


def _prefixes(data: bytes, pos: int, end: int, v6: bool,
              addpath: bool) -> tuple[list[tuple[int | None, str]], str | None]:
    """(path_id, prefix) for each NLRI entry in ``data[pos:end]`` and the first problem.

    Entries are ``[path id (4 octets, ADD-PATH)] length(1) prefix(ceil(length/8))``. Decoding
    stops at the first bad entry; the entries before it are returned with the reason.
    """
    if not addpath:               # the common case: offsets only, text made later per table
        return scan(data, pos, end, v6)
    out: list[tuple[int | None, str]] = []
    max_bits = 128 if v6 else 32
    cache = _PREFIX_TEXT_V6 if v6 else _PREFIX_TEXT_V4
    path_id = None
    while pos < end:
        if addpath:
            if pos + 5 > end:
                return out, "NLRI path id truncated"
            path_id = _U32.unpack_from(data, pos)[0]
            pos += 4
        plen = data[pos]
        if plen > max_bits:
            return out, f"prefix length {plen} > {max_bits}"
        nbytes = (plen + 7) >> 3
        nxt = pos + 1 + nbytes
        if nxt > end:
            return out, f"prefix /{plen} past end"
        key = data[pos:nxt]              # the same prefix recurs in many UPDATEs: text made once
        text = cache.get(key)
        if text is None:
            if v6:
                text = f"{ipv6_str(data[pos + 1:nxt] + _ZERO_PAD16[nbytes])}/{plen}"
            else:
                text = f"{_inet_ntoa(data[pos + 1:nxt] + _ZERO_PAD4[nbytes])}/{plen}"
            if len(cache) >= _PREFIX_CACHE_SIZE:
                cache.clear()
            cache[key] = text
        out.append((path_id, text))
        pos = nxt
    return out, None


def _nlri(data: bytes, pos: int, end: int, v6: bool, addpath: bool, assumed: bool,
          problems: list[str], notes: list[str]) -> list[tuple[int | None, str]]:
    """Prefixes with the context's ADD-PATH setting.

    Only when the context is assumed (no OPENs seen) and the NLRI does not parse without path
    ids, or parses into the same default route twice -- what small path ids (00 00 00 nn) look
    like when read as prefixes -- but does parse with them, the ADD-PATH reading is used and
    said in ``notes``.
    """
    if pos >= end:
        return []
    out, problem = _prefixes(data, pos, end, v6, addpath)
    if problem is None and not (assumed and not addpath and len(out) > 1
                                and out.count(_DEFAULT_V6 if v6 else _DEFAULT_V4) > 1):
        return out
    if assumed and not addpath:
        guess, guess_problem = _prefixes(data, pos, end, v6, True)
        if guess_problem is None:
            notes.append("add-path path ids assumed (no OPEN seen)")
            return guess
    if problem is None:
        return out
    _note(problems, problem)
    return out


def _decode_update(data: bytes, end: int, ctx: Direction, row: dict,
                   problems: list[str]) -> list[tuple[dict, list]]:
    pos = HEADER_LEN
    withdrawn_len = _U16.unpack_from(data, pos)[0]
    w_start = pos + 2
    w_end = w_start + withdrawn_len
    if w_end + 2 > end:
        _note(problems, f"withdrawn routes length {withdrawn_len} past end")
        w_end = min(w_end, end)
        attr_start = attr_end = nlri_end = w_end
    else:
        attr_len = _U16.unpack_from(data, w_end)[0]
        attr_start = w_end + 2
        attr_end = attr_start + attr_len
        nlri_end = end
        if attr_end > end:
            _note(problems, f"path attribute length {attr_len} past end")
            attr_end = nlri_end = end

    notes: list[str] = []
    addpath = ctx.addpath
    assumed = ctx.assumed
    v4_addpath = (1, 1) in addpath if addpath else False

    withdrawn = _nlri(data, w_start, w_end, False, v4_addpath, assumed, problems, notes)
    attrs = decode_path_attributes(data, attr_start, attr_end, ctx.as4, assumed, problems)
    cols = attrs.columns
    announced = _nlri(data, attr_end, nlri_end, False, v4_addpath, assumed, problems, notes)

    routes: list[tuple[dict, list]] = []
    if withdrawn:
        base = _ROUTE_TEMPLATE.copy()
        base["action"] = "withdraw"
        base["afi"] = _IPV4
        base["safi"] = _UNICAST
        routes.append((base, withdrawn))
    announce_base = None
    if announced or attrs.mp_reach is not None:
        announce_base = _ROUTE_TEMPLATE.copy()
        announce_base.update(cols)
        announce_base["action"] = "announce"
    if announced:
        # the MP_REACH routes below start from announce_base too: copy it only then
        base = announce_base.copy() if attrs.mp_reach is not None else announce_base
        base["afi"] = _IPV4
        base["safi"] = _UNICAST
        routes.append((base, announced))
    n_withdrawn = len(withdrawn)
    n_announced = len(announced)
    eor = None
    # RFC 4271 6.3 / RFC 4760 3: what announces routes carries ORIGIN (bit 1) and AS_PATH (2),
    # and NEXT_HOP (3) for the IPv4 NLRI of the message body (RFC 7606 3.d: else
    # treat-as-withdraw)
    need = _NEEDS_NEXT_HOP if announced else _NEEDS_ORIGIN_AS_PATH if (
        attrs.mp_reach is not None and attrs.mp_reach.nlri_start < attrs.mp_reach.nlri_end) else 0
    if attrs.seen & need != need:
        for code, name in ((1, "ORIGIN"), (2, "AS_PATH"), (3, "NEXT_HOP")):
            if need >> code & 1 and not attrs.seen >> code & 1:
                _note(problems, f"missing well-known attribute {name}")

    mp = attrs.mp_unreach
    if mp is not None:
        base = _ROUTE_TEMPLATE.copy()
        base["action"] = "withdraw"
        mp_routes = _mp_routes(data, mp.afi, mp.safi, mp.nlri_start, mp.nlri_end, base,
                               (mp.afi, mp.safi) in addpath, assumed, problems, notes)
        routes.extend(mp_routes)
        n_withdrawn += sum(len(p) for _b, p in mp_routes)
        if mp.nlri_start >= mp.nlri_end and not withdrawn and not announced \
                and attrs.mp_reach is None:
            eor = names.family_name(mp.afi, mp.safi)          # RFC 4724 2
    mp = attrs.mp_reach
    if mp is not None:
        base = announce_base
        base["next_hop"] = mp.next_hop
        base["next_hop_link_local"] = mp.next_hop_link_local
        mp_routes = _mp_routes(data, mp.afi, mp.safi, mp.nlri_start, mp.nlri_end, base,
                               (mp.afi, mp.safi) in addpath, assumed, problems, notes)
        routes.extend(mp_routes)
        n_announced += sum(len(p) for _b, p in mp_routes)
        if "next_hop" not in cols:
            cols["next_hop"] = mp.next_hop
            cols["next_hop_link_local"] = mp.next_hop_link_local
    if attr_end == attr_start and w_end == w_start and nlri_end <= attr_end and not problems:
        eor = "ipv4/unicast"                                   # RFC 4724 2: empty UPDATE
    row.update(cols)
    if row["atomic_aggregate"] is None:
        row["atomic_aggregate"] = False
    row["n_withdrawn"] = n_withdrawn
    row["n_announced"] = n_announced
    row["eor"] = eor
    if assumed and attrs.as_octets == 2 and ctx.as4:
        notes.append("AS_PATH read as 2-octet (4-octet assumed, did not fit)")
    if notes:
        row["ctx_note"] = "; ".join(dict.fromkeys(notes))
    return routes


def _mp_routes(data: bytes, afi: int, safi: int, start: int, end: int, base: dict,
               addpath: bool, assumed: bool, problems: list[str],
               notes: list[str]) -> list[tuple[dict, list]]:
    if start >= end:
        return []
    base = base.copy()
    base["afi"] = names.afi_name(afi)
    base["safi"] = names.safi_name(safi)
    if afi in (1, 2) and safi in (1, 2):
        prefixes = _nlri(data, start, end, afi == 2, addpath, assumed, problems, notes)
        return [(base, prefixes)] if prefixes else []
    if splits(afi, safi):
        return _family_groups(data, afi, safi, start, end, base, addpath, assumed, problems,
                              notes)
    base["nlri_raw"] = data[start:end].hex()
    return [(base, [(None, None)])]


def _family_groups(data: bytes, afi: int, safi: int, start: int, end: int, base: dict,
                   addpath: bool, assumed: bool, problems: list[str],
                   notes: list[str]) -> list[tuple[dict, list]]:
    """One group per route of a labeled, VPN, EVPN or BGP-LS NLRI (:mod:`.bgp_families`): each
    route has fields of its own (RD, labels, ...), so no two share a row. ADD-PATH is guessed
    as in :func:`_nlri` when the context is assumed."""
    entries, problem = family_routes(data, start, end, afi, safi, addpath)
    if problem is not None and assumed and not addpath:
        guess, guess_problem = family_routes(data, start, end, afi, safi, True)
        if guess_problem is None:
            notes.append("add-path path ids assumed (no OPEN seen)")
            entries, problem = guess, None
    if problem is not None:
        _note(problems, problem)
    groups = []
    for entry in entries:
        route = base.copy()
        prefix, path_id = entry.pop("prefix", None), entry.pop("path_id", None)
        route.update(entry)
        groups.append((route, [(path_id, prefix)]))
    return groups
