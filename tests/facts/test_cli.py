"""``diag facts`` in-process: exact JSON keys, one table as CSV/JSON, usage errors, a bare pcap."""
from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from diag.cli import app
from tests.facts.helpers import BUNDLES, FIXTURES, truth

CASE = "cilium-vxlan-default"


def _run(*args):
    result = CliRunner().invoke(app, ["facts", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_json_model_and_table_sizes():
    code, out, err = _run(BUNDLES / f"{CASE}.tar.gz", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"schema_version", "source", "kind", "bundle", "model", "tables",
                        "parse_errors", "problems"}
    assert doc["kind"] == "bundle" and doc["bundle"]["status"] in ("complete", "partial")
    t = truth(CASE)
    for name, info in t["hosts"].items():
        host = doc["model"]["hosts"][name]
        assert host["role"]["value"] == info["role"]
        assert host["pod_cidr"]["value"] == (info["pod_cidr"] or None)
        assert host["pod_cidr"]["how"]
    assert doc["model"]["pod_range"]["value"] == t["pod_range"]
    assert doc["tables"]["bgp_peers"] == 6 and doc["tables"]["tunnels"] == 3
    assert doc["tables"]["packets"] > 0


def test_text_shows_the_model_and_how():
    code, out, _ = _run(BUNDLES / f"{CASE}.tar.gz")
    assert code == 0
    t = truth(CASE)
    for name, info in t["hosts"].items():
        assert name in out
        if info["pod_cidr"]:
            assert f"{name} pod CIDR: {info['pod_cidr']} <- " in out
    assert "tables" in out and "bgp_peers" in out


def test_one_table_csv_and_json():
    code, out, _ = _run(BUNDLES / f"{CASE}.tar.gz", "--table", "routes", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and {"host", "source", "table", "dst", "gateway", "dev", "protocol"} <= set(rows[0])
    t = truth(CASE)
    assert {(r["host"], r["dst"]) for r in rows} >= {
        (n, h["pod_cidr"]) for n, h in t["hosts"].items() if h["pod_cidr"]}
    code, out, _ = _run(BUNDLES / f"{CASE}.tar.gz", "--table", "bgp_peers", "--format", "json")
    doc = json.loads(out)
    assert doc["table"] == "bgp_peers" and {r["state"] for r in doc["rows"]} == {"ESTABLISHED"}
    code, out, _ = _run(BUNDLES / f"{CASE}.tar.gz", "--table", "tunnels")
    assert code == 0 and out.startswith("tunnels: 3 rows")


def test_usage_errors():
    code, _, err = _run(BUNDLES / f"{CASE}.tar.gz", "--table", "nope")
    assert code == 2 and "no table 'nope'" in err and "hint: tables:" in err
    code, _, err = _run(BUNDLES / f"{CASE}.tar.gz", "--format", "csv")
    assert code == 2 and "--table" in err
    code, _, err = _run(BUNDLES / f"{CASE}.tar.gz", "--format", "yaml")
    assert code == 2


def test_bare_capture():
    code, out, err = _run(FIXTURES / "pcap-facts" / "vxlan_port_mismatch.pcap", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["kind"] == "capture" and doc["tables"]["wire_tunnels"] > 0
    ports = {(t["local"], t["port"]) for t in doc["model"]["tunnels"]}
    assert ports == {("198.51.100.11", 8472), ("198.51.100.12", 4789)}


def test_inventory_file_declares(tmp_path):
    inventory = tmp_path / "inv.toml"
    inventory.write_text('[[hosts]]\nname = "k8s-w1"\nrole = "node"\npod_cidr = "198.18.0.0/24"\n'
                         'lb_ips = ["198.18.1.1"]\n')
    code, out, err = _run(BUNDLES / f"{CASE}.tar.gz", "--format", "json", "-i", inventory)
    assert code == 0, err
    model = json.loads(out)["model"]
    assert model["hosts"]["k8s-w1"]["pod_cidr"]["value"] == "198.18.0.0/24"
    assert model["hosts"]["k8s-w1"]["pod_cidr"]["source"] == "declared"
    assert model["lb_ips"]["value"] == ["198.18.1.1"]
