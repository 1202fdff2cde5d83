"""Distinct prefixes are counted by 64-bit keys made from the packed NLRI (no text per prefix):
a key must be a function of the prefix's text and tell different texts apart.

Oracle: the prefix texts (Python's ``ipaddress`` formats the same addresses; ``texts`` and
iteration give them) on structured sets that break a weak mix — neighbouring /64 and /128
prefixes, every length over the same address bytes, host bits in the last byte — and random ones.
The three key makers (numpy, per pack, from the text) must agree.
"""
from __future__ import annotations

import ipaddress
import random

from diag.decode import nlri


def _pack(entries: list[tuple[int, bytes]], v6: bool) -> nlri.PackedPrefixes:
    data, offsets = bytearray(b"\xff\xff"), []
    for plen, raw in entries:
        offsets.append(len(data))
        data.append(plen)
        data += raw[:(plen + 7) >> 3]
    return nlri.PackedPrefixes(bytes(data), offsets, v6)


def _structured() -> list[nlri.PackedPrefixes]:
    packs = []
    v6 = []
    for x in range(0, 4096, 3):
        raw = ipaddress.IPv6Address(f"fd00:5:0:{x:x}::").packed
        v6 += [(64, raw), (128, raw), (48, raw), (63, raw)]
    packs.append(_pack(v6, True))
    v4 = []
    for a in range(0, 256, 5):
        raw = bytes([10, a, 255 - a, 7])
        v4 += [(plen, raw) for plen in range(0, 33)]
    packs.append(_pack(v4, False))
    rng = random.Random(3)
    for _ in range(200):
        is6 = rng.random() < 0.5
        entries = []
        for _ in range(rng.randint(0, 30)):
            plen = rng.randint(0, 128 if is6 else 32)
            entries.append((plen, rng.randbytes(16 if is6 else 4)))
        packs.append(_pack(entries, is6))
    return packs


def test_keys_agree_and_separate_texts():
    packs = _structured()
    texts = [t for p in packs for _pid, t in p]
    assert texts == nlri.texts(packs).tolist()
    by_numpy = nlri.keys(packs).tolist()
    by_pack = [k for p in packs for k in nlri.pack_keys(p)]
    by_text = [nlri.text_key(t) for t in texts]
    assert by_numpy == by_pack == by_text
    seen: dict[int, str] = {}
    for key, text in zip(by_numpy, texts):
        assert seen.setdefault(key, text) == text, f"{text} and {seen[key]} share a key"
    assert len(set(by_numpy)) == len(set(texts)) > 5000


def test_texts_that_are_not_prefixes():
    odd = ["(raw)", "10.0.0.0/08", "10.0.0.0/33", "::/129", "rd 1:1 10.0.0.0/8", "10.0.0.0"]
    keys = [nlri.text_key(t) for t in odd]
    assert len(set(keys)) == len(odd)
    assert nlri.text_key(None) == nlri.text_key("(raw)")
    assert nlri.text_key("10.0.0.0/8") == nlri.pack_keys(_pack([(8, b"\x0a")], False))[0]
    assert all(k >= 0 for k in keys)
