"""No constant of the lab (addresses, subnets, names, AS numbers, NIC names) in diag's code
outside diag/lab: string and number literals are checked (docstrings and comments are prose)."""
from __future__ import annotations

import ast
import ipaddress
from pathlib import Path

from diag.lab import plan as lab_plan

DIAG = Path(__file__).resolve().parents[2] / "diag"


def _lab_constants() -> tuple[set[str], set[int]]:
    words: set[str] = set()
    numbers: set[int] = set()
    for key in lab_plan.ADDRESSINGS:
        plan = lab_plan.addressing_plan(key)
        words |= {plan.pod_range, plan.mgmt_gateway}
        words |= {seg.cidr if hasattr(seg, "cidr") else str(seg[1]) for seg in plan.segments}
        for host in plan.hosts:
            numbers.add(host.asn)
            words |= {host.name, host.pod_cidr, host.pod_ip} - {""}
            for nic in host.nics:
                words |= {nic.name, nic.ip, nic.address}
    words = {w for w in words if w}
    # common words a real system has too are not lab constants
    words -= {"eth0", "router"}
    # subnet prefixes as text, e.g. "192.168.10." / "172.20."
    for word in list(words):
        try:
            net = ipaddress.ip_network(word, strict=False)
        except ValueError:
            continue
        if net.prefixlen in (16, 24):
            words.add(".".join(str(net.network_address).split(".")[: net.prefixlen // 8]) + ".")
    return words, numbers


def _literals(tree: ast.AST):
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in docstrings:
            yield node


def test_lab_constants_are_known():
    words, numbers = _lab_constants()
    assert {"k8s-w1", "eth1", "enp0s8"} <= words and 65001 in numbers and 4200000101 in numbers


def _offenders(paths, prose_too: bool) -> list[str]:
    words, numbers = _lab_constants()
    offenders = []
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        for node in _literals(tree):
            value = node.value
            if isinstance(value, str) and any(w in value for w in words):
                # a sentence (help text, message) naming an example is prose; a bare token is
                # something code could key on
                if prose_too or len(value.split()) < 3:
                    offenders.append(f"{path.relative_to(DIAG)}:{node.lineno}: {value!r}")
            elif isinstance(value, int) and not isinstance(value, bool) and value in numbers:
                offenders.append(f"{path.relative_to(DIAG)}:{node.lineno}: {value}")
    return offenders


def test_no_lab_constant_outside_the_lab():
    paths = [p for p in sorted(DIAG.rglob("*.py")) if p.relative_to(DIAG).parts[0] != "lab"]
    assert _offenders(paths, prose_too=False) == []


def test_no_lab_constant_in_parse_and_facts_not_even_in_messages():
    paths = sorted(DIAG.glob("parse/*.py")) + sorted(DIAG.glob("facts/*.py"))
    assert len(paths) > 15 and _offenders(paths, prose_too=True) == []
