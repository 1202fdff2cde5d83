"""``ethtool -k DEV`` on real outputs of three ethtool versions (tests/fixtures/ethtool-k), the
error texts hosts print instead, and the collect side: which devices get an ``ethtool -k``."""
from __future__ import annotations

import json

import pytest

from diag.collect import catalogue
from diag.parse import ParseContext, ethtool, parser_for
from diag.parse.common import ParseError
from tests.parse.helpers import FIXTURES

DIR = FIXTURES / "ethtool-k"


def _rows(name: str) -> dict[str, dict]:
    return {r["feature"]: r for r in ethtool.raw((DIR / name).read_bytes())}


def test_rhel7_bond_four_space_indentation_and_requested():
    rows = _rows("insights-core-rhel7--bond0.out")
    assert len(rows) == 34 and {r["ifname"] for r in rows.values()} == {"bond0"}
    assert rows["rx-checksumming"] == {"ifname": "bond0", "feature": "rx-checksumming",
                                       "state": "off", "fixed": True, "requested": None,
                                       "parent": None}
    assert rows["tx-checksum-unneeded"]["parent"] == "tx-checksumming"
    assert rows["tx-checksum-unneeded"]["state"] == "on" and rows["tx-checksum-unneeded"]["fixed"]
    gso = rows["generic-segmentation-offload"]
    assert (gso["state"], gso["requested"], gso["fixed"], gso["parent"]) == ("off", "on", False,
                                                                             None)
    assert rows["tx-tcp6-segmentation"]["parent"] == "tcp-segmentation-offload"
    assert rows["udp-fragmentation-offload"]["parent"] is None


def test_calico_issue_pod_veth_tab_indentation():
    rows = _rows("calico-issue-8756--cali9d99c50de22.out")
    assert rows["tx-checksum-ip-generic"]["state"] == "on"
    assert rows["tx-checksum-ip-generic"]["parent"] == "tx-checksumming"
    assert rows["tx-checksum-ipv4"]["fixed"] and rows["tx-checksum-ipv4"]["state"] == "off"
    assert rows["tx-tcp-mangleid-segmentation"]["parent"] == "tcp-segmentation-offload"
    assert rows["generic-receive-offload"]["parent"] is None


@pytest.mark.parametrize("device", ["vxlan.calico", "eth1", "cali_pod"])
def test_debian12_ethtool_61_on_the_lab(device):
    rows = _rows(f"lab-calico-vxlan--k8s-w0--{device}.out")
    assert {r["ifname"] for r in rows.values()} == {device}
    assert rows["tx-checksum-ip-generic"]["state"] == "on"
    assert rows["tx-checksum-ip-generic"]["parent"] == "tx-checksumming"
    assert rows["rx-checksumming"]["state"] == "on"
    # ethtool 6.1 on kernel 6.18 prints every feature the kernel names, one line each
    text = (DIR / f"lab-calico-vxlan--k8s-w0--{device}.out").read_text()
    assert len(rows) == len(text.splitlines()) - 1


def test_every_line_becomes_one_row_for_every_fixture():
    for path in sorted(DIR.glob("*.out")):
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        frame = parser_for("ethtool-k-x").parse(path.read_bytes(), ParseContext("ethtool-k-x"))
        assert len(frame) == len(lines) - 1, path.name
        assert list(frame.columns) == ethtool.COLUMNS
        assert set(frame["state"]) <= {"on", "off"}


@pytest.mark.parametrize("name", ["insights-core--cannot-get.refused",
                                  "insights-core--bad-args.refused"])
def test_error_texts_are_refused_with_one_line(name):
    with pytest.raises(ParseError) as err:
        ethtool.parse((DIR / name).read_bytes())
    assert "\n" not in err.value.message and "Features for DEV" in err.value.message


def test_a_line_that_is_not_a_feature_is_refused():
    text = (DIR / "lab-calico-vxlan--k8s-w0--eth1.out").read_text() + "tx-checksumming maybe\n"
    with pytest.raises(ParseError) as err:
        ethtool.parse(text)
    assert "line 65" in err.value.message and "eth1" in err.value.message


def test_empty_output_is_an_empty_table():
    assert ethtool.parse(b"").empty and list(ethtool.parse(b"").columns) == ethtool.COLUMNS


def test_collect_asks_for_tunnels_first_then_nics_then_veths_never_lo():
    links = [{"ifname": "lo"}, {"ifname": "eth0"},
             {"ifname": "cali_pod", "linkinfo": {"info_kind": "veth"}},
             {"ifname": "vxlan.calico", "linkinfo": {"info_kind": "vxlan"}},
             {"ifname": "bond0", "linkinfo": {"info_kind": "bond"}},
             {"ifname": "$(reboot)"}, {"ifname": "-k"}]
    specs = catalogue.ethtool_commands(json.dumps(links).encode())
    assert [s.id for s in specs] == ["ethtool-k-vxlan.calico", "ethtool-k-eth0",
                                     "ethtool-k-bond0", "ethtool-k-cali_pod"]
    assert specs[0].argv == ("ethtool", "-k", "vxlan.calico")
    many = [{"ifname": f"veth{i}", "linkinfo": {"info_kind": "veth"}} for i in range(100)]
    assert len(catalogue.ethtool_commands(json.dumps(many).encode())) == \
        catalogue.MAX_ETHTOOL_DEVICES
    assert catalogue.ethtool_commands(b"not json") == []
    for spec in specs:
        parser = parser_for(spec.id)
        assert parser is not None and parser.table == "offloads"
