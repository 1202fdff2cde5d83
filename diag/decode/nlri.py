"""NLRI prefixes kept packed until a table needs their text (lazy per-prefix expansion).

Contract: ``scan(data, pos, end, v6) -> (PackedPrefixes, problem)`` walks the plain NLRI encoding
(RFC 4271 4.3 / RFC 4760: ``length(1) prefix(ceil(length/8))``, no ADD-PATH path id) recording only
where each entry starts — no string per prefix. A :class:`PackedPrefixes` behaves like the list
of ``(path_id, prefix_text)`` pairs it stands for (``len``, iteration, ``count``).
``texts(packs) -> numpy object array`` makes the text of every prefix of several packs at once:
addresses are gathered column-wise with numpy and each distinct prefix is formatted once.
"""
from __future__ import annotations

import socket
from typing import Iterator

from diag.decode.bgp_attrs import ipv6_str

_PAD = b"\0" * 17
_CACHE_SIZE = 1 << 16
_TEXT_CACHE: dict[bytes, str] = {}      # packed key (address bytes + length) -> text


class PackedPrefixes:
    __slots__ = ("data", "offsets", "v6", "size")

    def __init__(self, data: bytes, offsets: list[int], v6: bool) -> None:
        self.data, self.offsets, self.v6, self.size = data, offsets, v6, len(offsets)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[None, str]]:
        data, width = self.data, 16 if self.v6 else 4
        for pos in self.offsets:
            yield None, _text(data[pos + 1:pos + 1 + ((data[pos] + 7) >> 3)], data[pos], width)

    def count(self, pair: tuple) -> int:
        """How many entries equal ``pair`` (used for the default route, ``(None, '0.0.0.0/0')``)."""
        if pair in ((None, "0.0.0.0/0"), (None, "::/0")):
            data = self.data
            return sum(1 for pos in self.offsets if data[pos] == 0) if pair[1] == (
                "::/0" if self.v6 else "0.0.0.0/0") else 0
        return sum(1 for p in self if p == pair)

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, (list, PackedPrefixes)) else NotImplemented


def _text(raw: bytes, plen: int, width: int) -> str:
    addr = raw + _PAD[:width - len(raw)]
    return f"{ipv6_str(addr) if width == 16 else socket.inet_ntoa(addr)}/{plen}"


def scan(data: bytes, pos: int, end: int, v6: bool) -> tuple[PackedPrefixes, str | None]:
    """Entry offsets of ``data[pos:end]``; stops at the first bad entry and says why."""
    offsets: list[int] = []
    append = offsets.append
    max_bits = 128 if v6 else 32
    while pos < end:
        plen = data[pos]
        if plen > max_bits:
            return PackedPrefixes(data, offsets, v6), f"prefix length {plen} > {max_bits}"
        nxt = pos + 1 + ((plen + 7) >> 3)
        if nxt > end:
            return PackedPrefixes(data, offsets, v6), f"prefix /{plen} past end"
        append(pos)
        pos = nxt
    return PackedPrefixes(data, offsets, v6), None


def texts(packs: list[PackedPrefixes]) -> "np.ndarray":
    """The prefix text of every entry of ``packs``, in order, as one object array."""
    import numpy as np   # here, not at import: the per-packet decoder runs without numpy

    out = np.empty(sum(len(p) for p in packs), dtype=object)
    for width, plen, raw, where in _entries_by_family(packs):
        key = np.concatenate([raw, plen.astype(np.uint8)[:, None]], axis=1)
        keys = np.ascontiguousarray(key).view(np.dtype((np.void, width + 1))).ravel()
        uniq, inverse = np.unique(keys, return_inverse=True)
        cache = _TEXT_CACHE
        if len(cache) > _CACHE_SIZE:
            cache.clear()
        names = np.empty(len(uniq), dtype=object)
        for j, u in enumerate(uniq.tolist()):
            text = cache.get(u)
            if text is None:
                text = cache[u] = _text(u[:width], u[width], width)
            names[j] = text
        out[where] = names[inverse.ravel()]
    return out


def _entries_by_family(packs: list[PackedPrefixes]):
    """Per address family present in ``packs`` (IPv4 first): ``(width, plen, raw, where)`` for
    its entries in order — prefix lengths (int64), the address bytes zero-filled past the
    length (uint8, ``width`` columns) and each entry's position in the packs' concatenation."""
    import numpy as np

    starts = np.cumsum([0] + [len(p) for p in packs])[:-1]
    for v6 in (False, True):
        chosen = [i for i, p in enumerate(packs) if p.v6 == v6 and len(p)]
        if not chosen:
            continue
        width = 16 if v6 else 4
        datas = [packs[i].data for i in chosen]
        bases = np.cumsum([0] + [len(d) for d in datas[:-1]])
        buf = np.frombuffer(b"".join(datas) + _PAD, dtype=np.uint8)
        pos = np.concatenate([np.asarray(packs[i].offsets, dtype=np.int64) + base
                              for i, base in zip(chosen, bases.tolist())])
        plen = buf[pos].astype(np.int64)
        nbytes = (plen + 7) >> 3
        cols = np.arange(width)
        raw = buf[pos[:, None] + 1 + cols[None, :]]
        raw = np.where(cols[None, :] < nbytes[:, None], raw, 0).astype(np.uint8)
        lengths = np.array([len(packs[i]) for i in chosen], dtype=np.int64)
        first = np.repeat(starts[chosen] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        yield width, plen, raw, first + np.arange(len(pos))


# --- 64-bit prefix keys: distinct-prefix counting without making texts ------------------------
# key(prefix) is a function of its text (two prefixes have the same key exactly when they have the
# same text, up to 64-bit hash collisions for IPv6 and non-IP texts): IPv4 is exact
# (address << 8 | length, below 2**40); IPv6 is a 64-bit mix of address and length with bit 62
# set; any other text is Python's string hash with bit 61 set (and 62 clear).
_V6_TAG, _TEXT_TAG = 1 << 62, 1 << 61
_MASK64 = (1 << 64) - 1
_M1, _M2, _M3 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _fmix(h: int) -> int:
    """splitmix64's finaliser (a bijection of 64-bit words that spreads every bit)."""
    h ^= h >> 30
    h = (h * _M2) & _MASK64
    h ^= h >> 27
    h = (h * _M3) & _MASK64
    return h ^ (h >> 31)


def _mix(hi: int, lo: int, plen: int) -> int:
    inner = _fmix(lo ^ ((plen * _M3) & _MASK64))
    h = _fmix(hi ^ ((inner * _M1) & _MASK64))
    return (h & (_TEXT_TAG * 2 - 1)) | _V6_TAG


def _raw_key(raw: bytes, plen: int, v6: bool) -> int:
    """The key of a prefix from its (zero-padded) address bytes."""
    if v6:
        value = int.from_bytes(raw, "big")
        return _mix(value >> 64, value & _MASK64, plen)
    return int.from_bytes(raw, "big") << 8 | plen


def text_key(text: str | None) -> int:
    """The key of a prefix text (``None`` counts as the text ``(raw)``, as the summary shows it)."""
    if text is None:
        text = "(raw)"
    addr, _, bits = text.rpartition("/")
    if bits.isdigit() and str(int(bits)) == bits:
        plen = int(bits)
        try:
            if ":" in addr:
                if plen <= 128:
                    return _raw_key(socket.inet_pton(socket.AF_INET6, addr), plen, True)
            elif plen <= 32:
                return _raw_key(socket.inet_pton(socket.AF_INET, addr), plen, False)
        except (OSError, ValueError):
            pass
    return (hash(text) & (_TEXT_TAG - 1)) | _TEXT_TAG


def pack_keys(pack: PackedPrefixes) -> list[int]:
    """The keys of one pack's prefixes, in order, without numpy (small chunks)."""
    data, v6, width = pack.data, pack.v6, 16 if pack.v6 else 4
    out = []
    for pos in pack.offsets:
        plen = data[pos]
        raw = data[pos + 1:pos + 1 + ((plen + 7) >> 3)]
        out.append(_raw_key(raw + _PAD[:width - len(raw)], plen, v6))
    return out


def keys(packs: list[PackedPrefixes]) -> "np.ndarray":
    """:func:`pack_keys` of every entry of ``packs``, in order, as one int64 array (numpy)."""
    import numpy as np

    out = np.empty(sum(len(p) for p in packs), dtype=np.int64)
    for width, plen_int, raw8, where in _entries_by_family(packs):
        plen = plen_int.astype(np.uint64)
        raw = raw8.astype(np.uint64)
        if width == 16:
            shifts = np.arange(56, -1, -8, dtype=np.uint64)
            hi = (raw[:, :8] << shifts[None, :]).sum(axis=1, dtype=np.uint64)
            lo = (raw[:, 8:] << shifts[None, :]).sum(axis=1, dtype=np.uint64)
            with np.errstate(over="ignore"):
                inner = _np_fmix(lo ^ (plen * np.uint64(_M3)))
                h = _np_fmix(hi ^ (inner * np.uint64(_M1)))
            key = (h & np.uint64(_TEXT_TAG * 2 - 1)) | np.uint64(_V6_TAG)
        else:
            shifts = np.array([32, 24, 16, 8], dtype=np.uint64)
            key = (raw << shifts[None, :]).sum(axis=1, dtype=np.uint64) | plen
        out[where] = key.astype(np.int64)
    return out


def _np_fmix(h):
    """:func:`_fmix` on a uint64 numpy array (multiplication wraps modulo 2**64, as there)."""
    import numpy as np

    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(_M2)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(_M3)
    return h ^ (h >> np.uint64(31))
