"""ss, sysctl and nstat text parsers on real output; and a sweep: every fixture of a spec parses."""
from __future__ import annotations

import pytest

from diag.parse import ParseContext, nstat, parser_for, ss, sysctl
from diag.parse.common import ParseError
from tests.parse.helpers import FIXTURES, fixture, truth


def test_ss_lab_bgp_sockets_and_md5(lab_case):
    t = truth(lab_case)
    router_ips = {i.split("/")[0] for i in t["hosts"]["router"]["ips"]}
    for host, info in t["hosts"].items():
        df = ss.parse(fixture("ss-tanpi", f"{lab_case}--{host}.out"))
        assert df.attrs["warnings"] == []
        bgp = df[(df.state == "ESTAB") & ((df.local_port == 179) | (df.peer_port == 179))]
        if info["role"] == "node":
            assert list(bgp.local_addr) == [info["cluster_ip"]]
            assert set(bgp.peer_addr) <= router_ips and list(bgp.peer_port) == [179]
            assert set(bgp.process) == {"gobgpd" if t["cni"] == "cilium" else "bird"}
            # TCP-MD5 on the router <-> k8s-w1 session only (the lab's design)
            assert list(bgp.md5) == [host == "k8s-w1"]
            if t["cni"] == "cilium":  # cilium nodes never listen on 179
                assert not ((df.state == "LISTEN") & (df.local_port == 179)).any()
        else:
            assert set(bgp.peer_addr) == {h["cluster_ip"] for h in t["hosts"].values()
                                          if h["role"] == "node"}
            w1 = t["hosts"]["k8s-w1"]["cluster_ip"]
            assert dict(zip(bgp.peer_addr, bgp.md5))[w1]
            assert set(bgp.process) == {"bgpd"}
        assert bgp.retrans.notna().all() and bgp.rto.notna().all()


def test_ss_reference_md5_retransmits_and_stray_key_bytes():
    df = ss.parse(fixture("ss-tanpi", "reference-tor-md5.out"))
    assert df.attrs["warnings"] == ["line 1: stray bytes before the header (TCP-MD5 key bytes?)"]
    syn = df[df.state == "SYN-SENT"].iloc[0]
    assert (syn.peer_addr, syn.peer_port, syn.retrans, syn.retrans_total, syn.backoff) == (
        "198.51.100.11", 179, 1, 7, 3)
    assert syn.md5 and syn.unacked == 1 and syn.lastsnd == 243072
    assert list(df[df.state == "LISTEN"].local_addr) == ["0.0.0.0", "::"]
    assert "s3cret" not in df.to_string()


def test_ss_stray_line_is_a_warning_not_a_row():
    text = ("State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
            "ESTAB 0 0 192.0.2.1:179 192.0.2.2:40000\n\t cubic rto:204 retrans:0/1\n"
            "\x93garbage-key-bytes\n"
            "LISTEN 0 4096 [fe80::1%eth0]:179 [::]:*\n")
    df = ss.parse(text)
    assert list(df.state) == ["ESTAB", "LISTEN"]
    assert df.iloc[1].local_addr == "fe80::1" and df.iloc[1].local_scope == "eth0"
    assert len(df.attrs["warnings"]) == 1


def test_ss_unknown_format():
    with pytest.raises(ParseError):
        ss.parse("Netid State Recv-Q\nfoo bar baz\n")


def test_sysctl_lab(lab_case):
    for host in truth(lab_case)["hosts"]:
        df = sysctl.parse(fixture("sysctl-net", f"{lab_case}--{host}.out"))
        values = dict(zip(df.key, df.value))
        assert values["net.ipv4.ip_forward"] == "1"          # the lab turns forwarding on
        assert values["net.ipv4.conf.all.rp_filter"] == "0"
        assert set(df[df.name == "rp_filter"].iface) >= {"all", "default", "lo"}


def test_sysctl_dotted_interface_names():
    df = sysctl.parse("net.ipv4.conf.vxlan/calico.rp_filter = 2\n")
    row = df.iloc[0]
    assert (row["iface"], row["name"], row["family"]) == ("vxlan.calico", "rp_filter", "ipv4")
    with pytest.raises(ParseError):
        sysctl.parse("net.ipv4.ip_forward: 1\n")


def test_nstat():
    df = nstat.parse(fixture("nstat", "reference-n1-md5.out"))
    values = dict(zip(df.name, df.value))
    assert values["TcpExtTCPMD5Unexpected"] == 8 and values["TcpExtTCPMD5NotFound"] == 0
    assert set(df.group) == {"TcpExt"}
    with pytest.raises(ParseError):
        nstat.parse("IpInReceives lots\n")


def test_every_fixture_of_every_spec_parses():
    """Regression sweep over all real outputs (lab, kernel, reference, upstream)."""
    count = 0
    for path in sorted(FIXTURES.glob("*/*.out")):
        spec = path.parent.name
        if spec == "gobgp-adj-in":
            spec = "gobgp-adj-in-" + path.name.rsplit("--", 1)[1][:-4]
        parser = parser_for(spec)
        if parser is None:
            continue
        df = parser.parse(path.read_bytes(), ParseContext(spec=spec, now=None))
        assert "host" not in df.columns
        count += 1
    assert count > 300


def test_every_refused_fixture_is_refused_with_one_line():
    """Real outputs diag cannot read (``<spec>/<case>.refused``): a ParseError of one line that
    names the command, never an empty table."""
    paths = sorted(FIXTURES.glob("*/*.refused"))
    assert paths
    for path in paths:
        parser = parser_for(path.parent.name)
        with pytest.raises(ParseError) as err:
            parser.parse(path.read_bytes(), ParseContext(spec=path.parent.name, now=None))
        assert "\n" not in err.value.message and path.parent.name.split("-")[0] in \
            err.value.message.lower()


def test_ss_ipv4_mapped_peer_is_ipv4():
    text = ("State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
            "ESTAB 0 0 [::ffff:192.0.2.1]:179 [::ffff:192.0.2.2]:40000\n")
    row = ss.parse(text).iloc[0]
    assert (row.local_addr, row.peer_addr, row.peer_port) == ("192.0.2.1", "192.0.2.2", 40000)
