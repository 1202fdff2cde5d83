"""diag: packet-capture and diagnostics toolkit for Kubernetes and Linux networking.

The data flow: hosts -collect-> bundle -parse/decode-> facts -analyze-> findings -report-> output.
Each stage is a sub-package with one job; stages never import each other.
"""
from __future__ import annotations

__version__ = "0.1.0"
