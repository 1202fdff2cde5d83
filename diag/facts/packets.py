"""Captures -> the decoder's tables, with each frame's interface named as the host names it.

Contract: :func:`capture_tables` decodes every capture of a bundle (or one bare pcap) with
:mod:`diag.decode` and returns the tables ``packets``, ``bgp_messages``, ``wire_routes`` (the
decoder's ``bgp_routes``), ``wire_tunnels``, ``arp`` (with ``answered``, ``reply_frame``,
``copy_of``, ``sees_replies`` and ``blind``: the one ARP rule of :mod:`diag.decode.arp`, its view
of what the capturing host could see taken from that host's packets, MACs and addresses),
``stream_events``, ``icmp``, ``fragments`` (IP datagrams reassembled or given up on),
``checksums`` (the TCP/UDP checksums of a bounded sample verified, :mod:`diag.decode.checksum`)
and ``sightings`` (each frame's innermost IP packet with its identity, its tunnel layer and its
transport checksum, :mod:`diag.decode.sightings`: what the flow ledger follows across captures;
``direction`` added from the frame, and from the decoder's ``fragments`` row of the outer
datagram a first fragment opens — the one reassembly rule — ``outer_fragments`` (how many it
came in; 1: not fragmented), ``outer_status`` (``reassembled``, ``incomplete``, ...) and
``outer_size`` (its payload bytes); ``outer_len`` of a fragmented datagram is its largest
fragment, what the underlay carried), each with ``host`` (the host that captured it) and
``iface``: the host's interface name for the frame. ``tcpdump -i any`` on recent libpcap writes
SLL2 records carrying the kernel ifindex, mapped here through that host's ``ip -j link`` table;
pcapng captures name their interfaces (``if_name``) and keep that name. ``iface`` is None when
neither is known (classic Ethernet pcap of one unnamed interface).
A capture that cannot be decoded becomes a ``parse_errors`` row, never an exception.

Memory: a capture is streamed in chunks as ``diag pcap`` streams it (:func:`diag.decode.iter_decode`),
and only the rows that decode are kept: of the malformed packets (damaged or zero-length
records, garbage), the first :data:`MALFORMED_ROWS_KEPT` per capture stay in ``packets`` and the
rest are counted, in one ``parse_errors`` row — so a capture padded with millions of empty
records costs what its real packets cost.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

MALFORMED_ROWS_KEPT = 1000
# a chunk's rows exist twice while its tables are made (tuples, then frames): a quarter of the
# decoder's default keeps that transient small beside the tables that are kept
CHUNK_PACKETS = 16384

WIRE_TABLES = {"packets": "packets", "bgp_messages": "bgp_messages", "bgp_routes": "wire_routes",
               "tunnels": "wire_tunnels", "arp": "arp", "stream_events": "stream_events",
               "icmp": "icmp", "fragments": "fragments", "lldp": "lldp"}


def _iface_map(interfaces, host: str) -> dict[int, str]:
    if interfaces is None or interfaces.empty:
        return {}
    from diag.values import is_missing

    rows = interfaces[interfaces["host"] == host]
    # a missing ifindex is NaN or pd.NA (a nullable column: its truth value raises)
    return {int(i): str(n) for i, n in zip(rows["ifindex"], rows["ifname"])
            if not is_missing(i)}


def _streamed(path: Path, options) -> tuple[Any, int]:
    """The capture's tables, chunk by chunk, keeping what decodes (see the module docstring);
    and how many malformed packet rows were counted but not kept."""
    import gc

    import pandas as pd

    from diag.decode import Tables, iter_decode

    parts: dict[str, list] = {name: [] for name in Tables.NAMES}
    kept = dropped = 0
    last = None
    for chunk in iter_decode(path, options, chunk_packets=CHUNK_PACKETS):
        # the command line pauses the cyclic GC while it loads (diag.pipeline.paused_gc); a
        # chunk's frames leave cycles behind, which would pile up over millions of records
        gc.collect(0)
        last = chunk
        for name in Tables.NAMES:
            df = getattr(chunk, name)
            if name == "packets" and len(df):
                bad = (df["malformed"].notna() & (df["malformed"] != "")).to_numpy()
                over = bad.cumsum() > MALFORMED_ROWS_KEPT - kept
                keep = ~(bad & over)
                kept += int((bad & keep).sum())
                dropped += int((~keep).sum())
                if not keep.all():
                    df = df[keep]
            if name != "interfaces" and len(df):
                parts[name].append(df)
    merged = {}
    for name in Tables.NAMES:
        frames = parts[name]
        if name == "interfaces":
            merged[name] = last.interfaces
        elif frames:
            merged[name] = pd.concat(frames, ignore_index=True) if len(frames) > 1 else \
                frames[0].reset_index(drop=True)
        else:
            merged[name] = getattr(last, name)
    return Tables(**merged, info=last.info), dropped


def _local(interfaces, addresses, host: str) -> set[str]:
    """The capturing host's own MACs and addresses (the ARP rule's view of "this host")."""
    out: set[str] = set()
    for df, column in ((interfaces, "mac"), (addresses, "address")):
        if df is not None and not df.empty and column in df:
            out |= {str(v) for v in df[df["host"] == host][column] if isinstance(v, str) and v}
    return out


def _arp_columns(arp, tunnels, packets, local: set[str]):
    """The one ARP rule's columns for one capture's ``arp`` rows (diag.decode.arp)."""
    from collections import Counter

    from diag.decode.arp import Vantage, annotate

    view = Vantage(local)
    view.packets(Counter(str(d) for d in packets["direction"].dropna()),
                 bool((packets["pkttype"] == "otherhost").any()),
                 set(packets["eth_dst"].dropna()))
    return annotate(arp.to_dict("records"),
                    tunnels[["frame", "depth", "vni", "outer_src", "outer_dst"]]
                    .to_dict("records") if not tunnels.empty else (), view)


def decode_capture(path: Path, host: str, interfaces, options, addresses=None) -> dict[str, Any]:
    """One capture -> {table name: DataFrame} with host and iface columns (and, under the key
    ``_dropped_malformed``, how many malformed rows were counted, not kept)."""
    import pandas as pd

    tables, dropped = _streamed(path, options)
    by_index = _iface_map(interfaces, host)
    packets = tables.packets.copy()

    def name(row_ifindex, row_name):
        if isinstance(row_name, str) and row_name:
            return row_name
        if row_ifindex is not None and not pd.isna(row_ifindex):
            return by_index.get(int(row_ifindex))
        return None

    packets["iface"] = [name(i, n) for i, n in zip(packets["ifindex"], packets["iface_name"])]
    packets.insert(0, "host", host)
    frame_iface = dict(zip(packets["frame"], packets["iface"]))
    out = {"packets": packets, "checksums": _checksums(path, host),
           "sightings": _sightings(path, host, packets, tables.fragments, options,
                                   _tunnel_ports(interfaces))}
    for attr, table in WIRE_TABLES.items():
        if attr == "packets":
            continue
        df = getattr(tables, attr).copy()
        df.insert(0, "host", host)
        if "frame" in df.columns:
            df["iface"] = [frame_iface.get(f) for f in df["frame"]]
        if attr == "arp":
            # the one rule (diag.decode.arp): explain and the report read these columns
            rule = _arp_columns(tables.arp, tables.tunnels, tables.packets,
                                _local(interfaces, addresses, host))
            df["answered"], df["reply_frame"] = rule.answered, rule.reply_frame
            df["copy_of"], df["sees_replies"], df["blind"] = (rule.copy_of, rule.sees_replies,
                                                              rule.blind)
            from diag.decode.arp import REPLY_WINDOW
            df.attrs["reply_window"] = REPLY_WINDOW
        out[table] = df
    out["_dropped_malformed"] = dropped
    return out


def _checksums(path: Path, host: str):
    """The capture's verified transport checksums (a bounded sample): host, frame, proto, ok."""
    import pandas as pd

    from diag.decode.checksum import census

    rows = census(path)
    return pd.DataFrame({"host": [host] * len(rows), "frame": [r[0] for r in rows],
                         "proto": [r[1] for r in rows], "ok": [r[2] for r in rows]})


def _tunnel_ports(interfaces) -> tuple[int, ...]:
    """The UDP ports the hosts' vxlan devices use (``ip -d -j link``): packets to them are VXLAN
    even when the port is not one of the defaults."""
    if interfaces is None or interfaces.empty or "vxlan_port" not in interfaces:
        return ()
    from diag.values import or_none

    ports = (or_none(p) for p in interfaces["vxlan_port"])
    return tuple(sorted({int(p) for p in ports if p is not None}))


def _outer_datagrams(rows: list[tuple], fragments) -> list[tuple]:
    """Per sighting row: (fragments, status, size, largest fragment) of its outer datagram, from
    the decoder's ``fragments`` table — the row of the same addresses and identification, at
    depth 0, whose first frame and deciding frame enclose the sighting's frame (the first
    fragment need not be the first to arrive). (1, None, None, None) when not fragmented."""
    from diag.decode.sightings import SIGHTING_COLUMNS

    col = {c: i for i, c in enumerate(SIGHTING_COLUMNS)}
    whole = (1, None, None, None)
    if not any(r[col["outer_fragment"]] for r in rows):
        return [whole] * len(rows)
    decided: dict[tuple, list[tuple]] = {}
    if fragments is not None and len(fragments):
        top = fragments[fragments["tunnel_depth"] == 0]
        for rec in top[["src", "dst", "ip_id", "first_frame", "frame", "fragments", "size",
                        "largest_fragment", "status"]].itertuples(index=False):
            decided.setdefault((rec.src, rec.dst, int(rec.ip_id)), []).append(
                (int(rec.first_frame), int(rec.frame),
                 (int(rec.fragments), str(rec.status), int(rec.size), int(rec.largest_fragment))))
    out = []
    for r in rows:
        if not r[col["outer_fragment"]]:
            out.append(whole)
            continue
        depth0 = r[col["depth"]] == 0
        key = (r[col["src"]] if depth0 else r[col["outer_src"]],
               r[col["dst"]] if depth0 else r[col["outer_dst"]], r[col["outer_ip_id"]])
        frame = r[col["frame"]]
        out.append(next((fate for first, last, fate in sorted(decided.get(key, ()))
                         if first <= frame <= last), (None, None, None, None)))
    return out


def _sightings(path: Path, host: str, packets, fragments, options,
               extra_vxlan: tuple[int, ...]):
    """The capture's packet identities (:mod:`diag.decode.sightings`) with host, iface and
    direction of their frames, and the decoder's word on their outer datagrams' fragments."""
    import pandas as pd

    from diag.decode.sightings import SIGHTING_COLUMNS, sightings
    from diag.decode.tables import records_frame

    rows = sightings(path, tuple(options.vxlan_ports) + extra_vxlan, options.geneve_ports)
    fates = _outer_datagrams(rows, fragments)
    df = records_frame(rows, SIGHTING_COLUMNS)
    outer = records_frame(fates, ("outer_fragments", "outer_status", "outer_size",
                                  "largest_fragment"))
    for column in ("outer_fragments", "outer_status", "outer_size"):
        df[column] = outer[column].array if len(df) else pd.Series(dtype=object)
    if len(df):
        largest = outer["largest_fragment"]
        if largest.notna().any():
            own = pd.Series(df["outer_len"].array, dtype="Int64")
            df["outer_len"] = pd.Series(largest.array, dtype="Int64").fillna(own).array
    by_frame = packets.set_index("frame")[["iface", "direction"]] if len(packets) else None
    if by_frame is not None and len(df):
        where = by_frame.reindex(pd.Index(df["frame"].astype("int64")))
        df.insert(1, "iface", where["iface"].to_numpy())
        df.insert(2, "direction", where["direction"].to_numpy())
    else:
        df.insert(1, "iface", pd.Series([None] * len(df), dtype=object))
        df.insert(2, "direction", pd.Series([None] * len(df), dtype=object))
    df.insert(0, "host", host)
    return df


def capture_tables(captures: list[tuple[str, Path]], interfaces, options=None, addresses=None
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """[(host, pcap path)] -> (tables, parse error rows). ``interfaces``/``addresses``: the
    bundle's ``ip link``/``ip addr`` tables (None for a bare capture)."""
    import pandas as pd

    from diag.decode import DecodeOptions
    from diag.errors import DiagError
    from diag.facts.tables import error_row

    options = options or DecodeOptions()
    parts: dict[str, list] = {table: [] for table in (*WIRE_TABLES.values(), "checksums",
                                                      "sightings")}
    errors: list[dict[str, Any]] = []
    for host, path in captures:
        try:
            decoded = decode_capture(path, host, interfaces, options, addresses)
        except DiagError as err:        # not a capture at all (``fatal``: nothing decoded)
            errors.append(dict(error_row(host, "capture", "decode", str(path), err.message,
                                         "captures"), fatal=True))
            continue
        dropped = decoded.pop("_dropped_malformed")
        if dropped:
            errors.append(error_row(
                host, "capture", "decode", str(path),
                f"{dropped + MALFORMED_ROWS_KEPT} malformed records (damaged, zero-length or "
                f"garbage); the first {MALFORMED_ROWS_KEPT} are packets rows"))
        for table, df in decoded.items():
            parts[table].append(df)
    tables = {}
    for table, frames in parts.items():
        full = [f for f in frames if not f.empty]
        if full:
            tables[table] = pd.concat(full, ignore_index=True, sort=False)
        elif frames:  # decoded but empty: keep the decoder's columns
            tables[table] = frames[0]
        else:
            tables[table] = pd.DataFrame({"host": pd.Series(dtype="object"),
                                          "iface": pd.Series(dtype="object")})
    return tables, errors
