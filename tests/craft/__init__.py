"""Deterministic, scapy-built captures with known ground truth (see :mod:`.builders`)."""
from tests.craft.builders import Crafted, build_all, build_bad_files

__all__ = ["Crafted", "build_all", "build_bad_files"]
