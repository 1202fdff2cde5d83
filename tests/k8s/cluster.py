"""A small cluster's objects for the lab API endpoint, from the fixtures: the seeds' Cilium BGP
objects, pool and L2 policy, real Node/Service/ConfigMap objects, MetalLB samples; plus the two
Leases the seeds' `kubectl get lease` listings show (rebuilt from those listings)."""
from __future__ import annotations

import json
from pathlib import Path

from tests.k8s.fixtures import objects

METALLB_PASSWORD = "s3cr3t-bgp-md5"


def leases() -> list[dict]:
    # seed003-kubectl-get-lease.txt: cilium-l2announce-kube-system-webpod held by k8s-w1;
    # the kube-controller-manager lease as in the Calico 3.26 notes' `kubectl get leases -A`
    return [
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": "cilium-l2announce-kube-system-webpod", "namespace": "kube-system"},
         "spec": {"holderIdentity": "k8s-w1", "leaseDurationSeconds": 15}},
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": "kube-controller-manager", "namespace": "kube-system"},
         "spec": {"holderIdentity": "mac-k8s_99a2c279-255d-4852-9726-df6765860ee3",
                  "leaseDurationSeconds": 15}},
    ]


def metallb_with_password() -> list[dict]:
    items = objects("upstream/metallb-configsamples.yaml")
    peer = next(i for i in items if i["metadata"]["name"] == "peer")
    peer["spec"]["password"] = METALLB_PASSWORD      # the one edit a person makes
    return items


def write_cluster(directory: Path, *, cilium_config: bool = True, metallb: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    groups = {
        "cilium-bgp": objects("seeds/seed000-cilium-bgp.yaml"),
        "cilium-lb": objects("seeds/seed003-lbippool-cilium-lb-ippool.yaml",
                             "seeds/seed003-l2announcementpolicy-policy1.yaml"),
        "nodes": objects("upstream/k8s-1.23-node-calico.yaml")[:1],
        "services": [o for o in objects("upstream/cilium-v2alpha1-server-objects.yaml")
                     if o["kind"] == "Service"],
        "leases": leases(),
    }
    if cilium_config:
        groups["cilium-config"] = objects("upstream/cilium-config-gke-dpv2.yaml")
    if metallb:
        groups["metallb"] = metallb_with_password()
    for name, items in groups.items():
        (directory / f"{name}.json").write_text(json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": items}))
    return directory
