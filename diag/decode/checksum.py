"""Transport checksums of a capture, verified: what ``tcpdump -vv`` prints as "incorrect".

Contract: :func:`census(path, limit)` -> list of ``(frame, proto, ok)`` for the first ``limit``
TCP and UDP packets over IPv4/IPv6 (outer headers only) whose bytes were all captured, that are
not fragments, and (UDP over IPv4) carry a checksum at all (0 = none). ``proto`` is ``"tcp"`` or
``"udp"``; ``ok`` whether the one's-complement sum over the pseudo-header and segment holds.

Why this is separate from the decoder: checksums matter only to tell a capture artefact from a
real fault (a host capturing its own sent packets sees partial checksums when the NIC or veth
offloads them; bad checksums arriving from another host are real), so explain verifies a bounded
sample of a bundle's small captures instead of taxing every decode. A damaged or unreadable file
yields what was verified before the damage (the decoder reports the damage itself).
"""
from __future__ import annotations

import struct
from pathlib import Path

from diag.decode.capture import Damage, open_capture
from diag.decode.layers import ETH_IPV4, ETH_IPV6, Malformed, link_header

DEFAULT_LIMIT = 50_000
_IPV6_EXTENSIONS = frozenset((0, 43, 60))      # hop-by-hop, routing, destination options


def ones_complement_sum(data: bytes, start: int = 0) -> int:
    """The 16-bit one's-complement sum of ``data`` (odd length padded), folded.

    Folding adds the carries back in, which keeps the sum modulo 0xFFFF; and 2**16 is 1 modulo
    0xFFFF, so the sum of the 16-bit words is the whole buffer read as one big-endian number,
    modulo 0xFFFF — computed in C, not word by word (a 64 KiB GSO segment is 32,768 words).
    A non-zero multiple of 0xFFFF folds to 0xFFFF, never 0."""
    if len(data) % 2:
        data += b"\0"
    total = int.from_bytes(data, "big") + start
    if total == 0:
        return 0
    return total % 0xFFFF or 0xFFFF


def _verify(pseudo: bytes, segment: bytes) -> bool:
    return ones_complement_sum(pseudo + segment) == 0xFFFF


def _ipv4(data: bytes, off: int) -> tuple[str, bool] | None:
    if len(data) < off + 20 or data[off] >> 4 != 4:
        return None
    ihl = (data[off] & 0x0F) * 4
    total = struct.unpack_from("!H", data, off + 2)[0]
    frag = struct.unpack_from("!H", data, off + 6)[0]
    proto = data[off + 9]
    if proto not in (6, 17) or frag & 0x3FFF or ihl < 20 or off + total > len(data):
        return None
    segment = data[off + ihl:off + total]
    if proto == 17 and (len(segment) < 8 or segment[6:8] == b"\0\0"):
        return None                                  # UDP over IPv4 without a checksum
    if proto == 6 and len(segment) < 20:
        return None
    pseudo = data[off + 12:off + 20] + struct.pack("!BBH", 0, proto, len(segment))
    return ("tcp" if proto == 6 else "udp"), _verify(pseudo, segment)


def _ipv6(data: bytes, off: int) -> tuple[str, bool] | None:
    if len(data) < off + 40 or data[off] >> 4 != 6:
        return None
    payload_len = struct.unpack_from("!H", data, off + 4)[0]
    end = off + 40 + payload_len
    if end > len(data):
        return None
    nh, pos = data[off + 6], off + 40
    while nh in _IPV6_EXTENSIONS and pos + 2 <= end:
        nh, pos = data[pos], pos + (data[pos + 1] + 1) * 8
    if nh not in (6, 17) or pos > end:
        return None                                  # fragments (44) and others: skipped
    segment = data[pos:end]
    if (nh == 17 and len(segment) < 8) or (nh == 6 and len(segment) < 20):
        return None
    pseudo = data[off + 8:off + 40] + struct.pack("!IxxxB", len(segment), nh)
    return ("tcp" if nh == 6 else "udp"), _verify(pseudo, segment)


def census(path: str | Path, limit: int = DEFAULT_LIMIT) -> list[tuple[int, str, bool]]:
    out: list[tuple[int, str, bool]] = []
    _info, records = open_capture(path)
    for item in records:
        if isinstance(item, Damage) or len(out) >= limit:
            break
        frame, _ts, _iface, linktype, data, wirelen, _flags = item
        if len(data) < wirelen:
            continue                                 # cut by the snap length: cannot verify
        try:
            link = link_header(linktype, data)
        except Malformed:
            continue
        checked = (_ipv4(data, link.offset) if link.ethertype == ETH_IPV4 else
                   _ipv6(data, link.offset) if link.ethertype == ETH_IPV6 else None)
        if checked is not None:
            out.append((frame, *checked))
    return out


__all__ = ["census", "ones_complement_sum", "DEFAULT_LIMIT"]
