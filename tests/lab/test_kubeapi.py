"""The lab's API endpoint answers the real kubectl: lists and gets, discovery, the API's own
Status bodies (403, 404), a not-installed CRD, a slow kind and kubectl's request timeout,
edits of the object files."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from diag.lab.kube_objects import KubeObjectOptions, cluster_objects, write_objects
from diag.lab.kubeapi import ApiOptions, KubeApiServer
from diag.lab.plan import addressing_plan

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed "
                                "(bash .ci/test installs Debian's kubernetes-client)")


@pytest.fixture
def lab_api(tmp_path):
    objects = tmp_path / "objects"
    write_objects(objects, cluster_objects(addressing_plan("default"),
                                           KubeObjectOptions(cni="cilium")))
    options = ApiOptions(objects_dir=objects, denied=frozenset({"ciliumnodes.cilium.io"}),
                         slow={"ciliuml2announcementpolicies.cilium.io": 4.0})
    with KubeApiServer(options) as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        home = tmp_path / "home"
        home.mkdir()

        def kubectl(*args, timeout=30):
            return subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), *args],
                                  capture_output=True, text=True, timeout=timeout, check=False,
                                  env={"PATH": os.environ["PATH"], "HOME": str(home)})
        yield api, kubectl, objects


def test_lists_gets_and_discovery(lab_api):
    api, kubectl, _ = lab_api
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)
    assert [n["metadata"]["name"] for n in nodes["items"]] == ["k8s-ctr", "k8s-w1", "k8s-w0"]
    got = json.loads(kubectl("get", "ciliumbgpclusterconfigs.cilium.io", "cilium-bgp-md5",
                             "-o", "json").stdout)
    assert got["apiVersion"] == "cilium.io/v2" and got["kind"] == "CiliumBGPClusterConfig"
    old = json.loads(kubectl("get", "ciliumbgpclusterconfigs.v2alpha1.cilium.io", "-o",
                             "json").stdout)
    assert {i["apiVersion"] for i in old["items"]} == {"cilium.io/v2alpha1"}
    selected = json.loads(kubectl("get", "nodes", "-l", "topology.kubernetes.io/zone=lan2",
                                  "-o", "json").stdout)
    assert [n["metadata"]["name"] for n in selected["items"]] == ["k8s-w0"]
    leases = json.loads(kubectl("get", "leases", "-n", "kube-system", "-o", "json").stdout)
    assert leases["items"][0]["spec"]["holderIdentity"] == "k8s-w1"
    resources = kubectl("api-resources", "-o", "wide")
    assert resources.returncode == 0
    assert "ciliumbgpnodeconfigs" in resources.stdout and "ipamblocks" not in resources.stdout
    assert all(method == "GET" for method, _, _ in api.requests)


def test_status_bodies_and_not_installed(lab_api):
    _, kubectl, _ = lab_api
    denied = kubectl("get", "ciliumnodes.cilium.io", "-o", "json")
    assert denied.returncode == 1
    assert 'Error from server (Forbidden): ciliumnodes.cilium.io is forbidden: User ' \
           '"diag-lab" cannot list resource "ciliumnodes" in API group "cilium.io" at the ' \
           'cluster scope' in denied.stderr
    missing = kubectl("get", "configmaps", "-n", "kube-system", "nope", "-o", "json")
    assert 'Error from server (NotFound): configmaps "nope" not found' in missing.stderr
    absent = kubectl("get", "ipamblocks.crd.projectcalico.org", "-o", "json")
    assert absent.returncode == 1
    assert "the server doesn't have a resource type" in absent.stderr


def test_slow_kind_meets_kubectls_request_timeout(lab_api):
    _, kubectl, _ = lab_api
    started = time.monotonic()
    slow = kubectl("--request-timeout=1s", "get", "ciliuml2announcementpolicies.cilium.io",
                   "-o", "json")
    # kubectl gives up after its bound (the endpoint waits 4 s), fails, and still prints an
    # empty List on stdout: collection must go by the exit status, never by that List
    assert slow.returncode == 1 and time.monotonic() - started < 3.5
    assert json.loads(slow.stdout)["items"] == []


def test_editing_an_object_file_is_editing_the_cluster(lab_api):
    _, kubectl, objects = lab_api
    path = objects / "cilium-bgp.json"
    document = json.loads(path.read_text())
    advert = next(i for i in document["items"] if i["kind"] == "CiliumBGPAdvertisement")
    advert["metadata"]["labels"] = {"advertise": "nothing"}
    path.write_text(json.dumps(document))
    got = json.loads(kubectl("get", "ciliumbgpadvertisements.cilium.io", "bgp-advertisements",
                             "-o", "json").stdout)
    assert got["metadata"]["labels"] == {"advertise": "nothing"}


def test_an_object_file_gone_while_the_api_reads_is_a_deleted_object(lab_api):
    """A debug pod's file removed between the endpoint's listing and its reading (nodes
    collected side by side, one node's debug pod deleted meanwhile): the other objects are
    still served; no request fails. A dangling link is such a file, for good."""
    _, kubectl, objects = lab_api
    (objects / "pod-node-debugger-gone.json").symlink_to(objects / "removed.json")
    done = kubectl("get", "nodes", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["items"]) >= 3
