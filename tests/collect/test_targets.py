"""Targets from the command line and inventory files."""
from __future__ import annotations

import json

import pytest

from diag.collect.targets import load_inventory, parse_target
from diag.errors import UsageError


@pytest.mark.parametrize("text,user,address,port", [
    ("node1", None, "node1", None),
    ("admin@node1", "admin", "node1", None),
    ("admin@10.0.0.5:2222", "admin", "10.0.0.5", 2222),
    ("[2001:db8::1]:22", None, "2001:db8::1", 22),
    ("2001:db8::1", None, "2001:db8::1", None),
])
def test_parse_target(text, user, address, port):
    target = parse_target(text)
    assert (target.user, target.address, target.port) == (user, address, port)


@pytest.mark.parametrize("text", ["-oProxyCommand=x", "a;b", "u$(x)@h", "h:99999", "h:x", "@h"])
def test_hostile_or_bad_targets_are_refused(text):
    with pytest.raises(UsageError):
        parse_target(text)


def test_local_target():
    assert parse_target("local").transport == "local"


def test_toml_inventory_with_declared_model(tmp_path):
    path = tmp_path / "inv.toml"
    path.write_text('''
[defaults]
user = "ops"
[[hosts]]
name = "w1"
address = "10.0.0.5"
port = 2222
role = "node"
labels = { rack = "a" }
pod_cidr = "10.244.1.0/24"
cluster_iface = "eth1"
lb_ips = ["192.0.2.10"]
[[hosts]]
name = "tor"
role = "router"
user = "root"
''')
    w1, tor = load_inventory(path)
    assert (w1.user, w1.address, w1.port) == ("ops", "10.0.0.5", 2222)
    assert w1.declared == {"role": "node", "labels": {"rack": "a"}, "pod_cidr": "10.244.1.0/24",
                           "cluster_iface": "eth1", "lb_ips": ["192.0.2.10"]}
    assert (tor.user, tor.address, tor.declared["role"]) == ("root", "tor", "router")


def test_json_inventory(tmp_path):
    path = tmp_path / "inv.json"
    path.write_text(json.dumps({"hosts": [{"name": "a"}, {"name": "b", "transport": "local"}]}))
    assert [t.transport for t in load_inventory(path)] == ["ssh", "local"]


@pytest.mark.parametrize("hosts,message", [
    ([{"name": "a", "pod_cidr": "10.0.0.0/33"}], "bad pod_cidr"),
    ([{"name": "a", "role": "king"}], "role must be"),
    ([{"name": "a", "colour": "red"}], "unknown field"),
    ([{"name": "a"}, {"name": "a"}], "duplicate"),
    ([{"name": "a", "address": "-oProxyCommand=x"}], "bad address"),
    ([{"address": "x"}], "needs a 'name'"),
])
def test_bad_inventory_is_one_clear_error(tmp_path, hosts, message):
    path = tmp_path / "inv.json"
    path.write_text(json.dumps({"hosts": hosts}))
    with pytest.raises(UsageError, match=message):
        load_inventory(path)


def test_unparseable_inventory(tmp_path):
    path = tmp_path / "inv.toml"
    path.write_text("[[hosts]\n")
    with pytest.raises(UsageError, match="not valid .toml"):
        load_inventory(path)


@pytest.mark.parametrize("text,seconds", [("30", 30), ("30s", 30), ("2m", 120), ("500ms", 0.5),
                                          ("1.5h", 5400)])
def test_durations(text, seconds):
    from diag.collect.request import parse_duration

    assert parse_duration(text, "--x") == seconds


@pytest.mark.parametrize("text,size", [("100", 100), ("2K", 2048), ("100M", 100 * 1024**2),
                                       ("1GiB", 1024**3)])
def test_sizes(text, size):
    from diag.collect.request import parse_size

    assert parse_size(text, "--x") == size


@pytest.mark.parametrize("kwargs,message", [
    ({"duration": 0}, "positive duration"),
    ({"duration": 5, "bpf_filter": " -w /tmp/x"}, "not an option"),
    ({"duration": 5, "iface": "eth0;reboot"}, "not an interface"),
    ({"duration": 5, "iface": "-i"}, "not an interface"),
    ({"duration": 5, "max_packets": 0}, "must be positive"),
])
def test_capture_options_that_could_turn_into_tcpdump_options_are_refused(kwargs, message):
    from diag.collect.catalogue import CaptureOptions, validate_capture

    with pytest.raises(UsageError, match=message):
        validate_capture(CaptureOptions(**kwargs))


@pytest.mark.parametrize("bad", ["10x", "-5", "", "1.2.3"])
def test_bad_duration_is_a_usage_error(bad):
    from diag.collect.request import parse_duration

    with pytest.raises(UsageError):
        parse_duration(bad, "--capture")
