"""Options several commands share, declared once (typer ``Annotated`` aliases).

The port options add to the defaults every decode has (BGP 179, VXLAN 4789 and 8472, GENEVE
6081); :func:`ports` turns the three lists into the pipeline's :class:`diag.pipeline.Ports`.
"""
from __future__ import annotations

from typing import Annotated, List

import typer

BgpPorts = Annotated[List[int], typer.Option(
    "--bgp-port", help="Extra TCP port carrying BGP in captures (repeatable; 179 is always on).")]
VxlanPorts = Annotated[List[int], typer.Option(
    "--vxlan-port", help="Extra UDP port carrying VXLAN (repeatable; 4789 and 8472 are always "
                         "on).")]
GenevePorts = Annotated[List[int], typer.Option(
    "--geneve-port", help="Extra UDP port carrying GENEVE (repeatable; 6081 is always on).")]
FailOn = Annotated[str, typer.Option(
    "--fail-on", help="Exit 1 when a finding is at or above: info, warning, error.")]


def ports(bgp: list[int] = (), vxlan: list[int] = (), geneve: list[int] = ()):
    from diag.pipeline import Ports

    return Ports(tuple(bgp or ()), tuple(vxlan or ()), tuple(geneve or ()))
