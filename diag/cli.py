"""The command line: argv -> one call -> output and an exit code. No logic lives here.

Heavy modules (pandas, rich, scapy) are imported inside the commands, never at import time, so that
``diag --help`` starts fast. Expected errors (:class:`diag.errors.DiagError`) become one red line
and their exit status; ``--traceback`` shows the full trace of anything else.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from diag import __version__
from diag.errors import DiagError, ExitStatus

app = typer.Typer(
    name="diag",
    help="Diagnose Kubernetes/Linux networking: captures (BGP, VXLAN/GENEVE, ARP), evidence "
    "bundles, findings, reports, and a namespace lab.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state = {"traceback": False}


def _version(value: bool) -> None:
    if value:
        print(f"diag {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    traceback: bool = typer.Option(False, "--traceback", help="Show full tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    _state["traceback"] = traceback


@app.command("pcap")
def pcap_command(
    file: Path = typer.Argument(..., help="Capture file (pcap or pcapng)."),
    fmt: str = typer.Option("text", "--format", help="Output: text or json."),
    bgp_port: List[int] = typer.Option([], "--bgp-port", help="Extra TCP port carrying BGP (repeatable; 179 is always on)."),
    vxlan_port: List[int] = typer.Option([], "--vxlan-port", help="Extra UDP port carrying VXLAN (4789 and 8472 are always on)."),
    geneve_port: List[int] = typer.Option([], "--geneve-port", help="Extra UDP port carrying GENEVE (6081 is always on)."),
    export: Optional[Path] = typer.Option(None, "--export", help="Write the tables into DIR (Parquet, or CSV with --export-format csv)."),
    export_format: str = typer.Option("parquet", "--export-format", help="parquet or csv."),
    frame: Optional[int] = typer.Option(None, "--frame", help="Show one frame (1-based, as in Wireshark)."),
    deep: bool = typer.Option(False, "--deep", help="With --frame: show it through Wireshark's dissectors (tshark)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes for the summary (default: all cores for files of 32 MiB or more, else 1; --export and --frame use one)."),
) -> None:
    """Analyse a capture offline: BGP sessions and messages, tunnels per VNI, ARP."""
    from diag.pcapcmd import run_pcap

    _run(lambda: run_pcap(file, fmt=fmt, bgp_ports=bgp_port, vxlan_ports=vxlan_port,
                          geneve_ports=geneve_port, export=export, export_format=export_format,
                          frame=frame, deep=deep, workers=workers))


def _run(call) -> None:
    """Run one command; map expected errors to a red line and the exit status."""
    try:
        status = call()
    except DiagError as err:
        _fail(err.message, err.hint)
        raise typer.Exit(int(err.exit_status))
    except KeyboardInterrupt:
        _fail("interrupted", None)
        raise typer.Exit(int(ExitStatus.INTERRUPTED))
    except BrokenPipeError:
        raise typer.Exit(0)
    except Exception as err:  # a bug: one line unless --traceback
        if _state["traceback"]:
            raise
        _fail(f"internal error: {type(err).__name__}: {err}", "rerun with --traceback and report it")
        raise typer.Exit(70)
    raise typer.Exit(int(status or 0))


def _fail(message: str, hint: str | None) -> None:
    red, dim, reset = ("\x1b[31m", "\x1b[2m", "\x1b[0m") if sys.stderr.isatty() else ("", "", "")
    print(f"{red}diag: error: {message}{reset}", file=sys.stderr)
    if hint:
        print(f"{dim}hint: {hint}{reset}", file=sys.stderr)


def _register_subapps() -> None:
    """Sub-command groups living in their stage packages (each a thin typer app)."""
    import importlib

    for module, name in (("diag.lab.cli", "lab"), ("diag.collect.cli", "collect"),
                         ("diag.facts.cli", "facts"), ("diag.analyze.cli", "explain"),
                         ("diag.report.cli", "report")):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        if isinstance(getattr(mod, "app", None), typer.Typer):
            app.add_typer(mod.app, name=name)
        elif callable(getattr(mod, "register", None)):
            mod.register(app, _run)


_register_subapps()


def main() -> None:
    app()
