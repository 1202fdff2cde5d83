"""One frame through Wireshark's dissectors (tshark via pyshark): ``diag pcap --frame N --deep``.

Contract: :func:`dissect(file, frame, options) -> str` returns pyshark's text of frame
``frame`` (1-based), with decode-as for the ports diag decodes that Wireshark does not by itself
(8472 as VXLAN in particular, extra BGP/GENEVE ports). No tshark is
:class:`diag.errors.EnvironmentProblem`; a frame tshark does not show is
:class:`diag.errors.UsageError`. The second opinion beside diag's own decoder, never its input.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from diag.errors import EnvironmentProblem, UsageError


def dissect(file: Path, frame: int, options) -> str:
    if not shutil.which("tshark"):
        raise EnvironmentProblem("--deep needs tshark", hint="apt-get install tshark")
    import asyncio

    import pyshark

    # pyshark drives tshark through asyncio's current loop; asyncio.run() elsewhere in this
    # process (e.g. an SSH collection) leaves none set, so give pyshark a fresh one
    asyncio.set_event_loop(asyncio.new_event_loop())

    decode_as = {f"udp.port=={p}": "vxlan" for p in options.vxlan_ports if p != 4789}
    decode_as |= {f"udp.port=={p}": "geneve" for p in options.geneve_ports if p != 6081}
    decode_as |= {f"tcp.port=={p}": "bgp" for p in options.bgp_ports if p != 179}
    cap = pyshark.FileCapture(str(file), display_filter=f"frame.number == {frame}",
                              decode_as=decode_as or None,
                              override_prefs={"tcp.desegment_tcp_streams": "TRUE"})
    try:
        packets = list(cap)
    except Exception as err:  # pyshark wraps tshark failures in several exception types
        raise EnvironmentProblem(f"tshark could not dissect frame {frame}: {err}") from None
    finally:
        cap.close()
    if not packets:
        raise UsageError(f"tshark shows no frame {frame}")
    return str(packets[0])
