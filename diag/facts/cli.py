"""``diag facts``: argv -> :func:`diag.facts.show.run_facts` -> output and exit status. No logic."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional

import typer


def register(app: typer.Typer, run: Callable) -> None:
    @app.command("facts")
    def facts_command(
        source: Path = typer.Argument(..., help="Bundle directory, bundle archive (.tar.gz), or a capture (pcap/pcapng)."),
        table: Optional[str] = typer.Option(None, "--table", help="Show one table (e.g. routes, bgp_peers)."),
        fmt: str = typer.Option("text", "--format", help="text, json, or csv (csv needs --table)."),
        inventory: Optional[Path] = typer.Option(None, "--inventory", "-i", help="Inventory (TOML/JSON): declared role, pod_cidr, cluster_iface, lb_ips win over inference."),
        bgp_port: List[int] = typer.Option([], "--bgp-port", help="Extra TCP port carrying BGP in captures."),
        vxlan_port: List[int] = typer.Option([], "--vxlan-port", help="Extra UDP port carrying VXLAN."),
        geneve_port: List[int] = typer.Option([], "--geneve-port", help="Extra UDP port carrying GENEVE."),
    ) -> None:
        """Show what diag believes: the cluster model (and how each part was inferred) and the tables."""
        from diag.facts.show import run_facts

        run(lambda: run_facts(source, table=table, fmt=fmt, inventory=inventory,
                              bgp_ports=bgp_port, vxlan_ports=vxlan_port,
                              geneve_ports=geneve_port))
