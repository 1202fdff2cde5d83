"""``ethtool -k DEV`` (the device's offload features): one row per feature.

Schema::

    ifname     str        the device, from the header ("Features for vxlan.calico:")
    feature    str        "tx-checksum-ip-generic", "rx-checksumming", ...
    state      str        on | off (what the device does now)
    fixed      bool       "[fixed]": the driver does not let it change
    requested  str|None   "[requested on]" / "[requested off]": asked for, not in force
    parent     str|None   the group an indented feature belongs to ("tx-checksumming" for
                          "tx-checksum-ip-generic"); None for top-level lines, and where the
                          output lost its indentation

Example: ``{"ifname": "vxlan.calico", "feature": "tx-checksum-ip-generic", "state": "on",
"fixed": False, "requested": None, "parent": "tx-checksumming"}``.

Versions: ethtool 3.x-6.x print ``Features for DEV:`` (older ones ``Offload parameters for
DEV:``, with the same ``name: on|off`` lines); sub-features are indented by a tab (some copies
by spaces); ``[not requested]`` marks a feature the kernel left off by itself. A header that is
missing, or a line that is not ``name: on|off [...]``, is a :class:`ParseError` — an error text
printed instead (``Cannot get device feature names: No such device``) included. Tested on real
outputs of ethtool on RHEL 7 (4-space indentation, ``tx-checksum-unneeded``), on an EL host of
a Calico issue (tab indentation) and Debian 12's ethtool 6.1 on kernel 6.18 (docs/facts.md).
"""
from __future__ import annotations

import re

from diag.parse.common import ParseError, Rows, as_text

COLUMNS = ["ifname", "feature", "state", "fixed", "requested", "parent"]
_HEADER = re.compile(r"^(?:Features|Offload parameters) for (\S+):\s*$")
_LINE = re.compile(r"^(\s*)([A-Za-z0-9][\w.-]*):\s+(on|off)\s*(\[[^\]]*\])?\s*(\[[^\]]*\])?\s*$")


def raw(data: str | bytes) -> list[dict]:
    lines = [line for line in as_text(data).splitlines() if line.strip()]
    if not lines:
        return []
    head = _HEADER.match(lines[0].strip())
    if head is None:
        raise ParseError(f"ethtool -k: expected 'Features for DEV:', got {lines[0].strip()[:80]!r}")
    ifname = head.group(1)
    rows: list[dict] = []
    parent = None
    for number, line in enumerate(lines[1:], start=2):
        match = _LINE.match(line.rstrip())
        if match is None:
            raise ParseError(f"ethtool -k {ifname}: line {number} is not 'feature: on|off': "
                             f"{line.strip()[:80]!r}")
        indent, name, state, *marks = match.groups()
        marks = [m.strip("[]") for m in marks if m]
        requested = next((m.removeprefix("requested ") for m in marks
                          if m.startswith("requested ")), None)
        if indent:
            row_parent = parent
        else:
            row_parent, parent = None, name
        rows.append({"ifname": ifname, "feature": name, "state": state,
                     "fixed": "fixed" in marks, "requested": requested, "parent": row_parent})
    return rows


def records(data: str | bytes) -> Rows:
    return Rows(raw(data), COLUMNS)


def parse(data: str | bytes):
    return records(data).frame()


__all__ = ["COLUMNS", "parse", "raw", "records"]
