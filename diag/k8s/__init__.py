"""Kubernetes facts every stage shares (a floor, like diag.model): nothing here runs kubectl,
reads a bundle or parses output.

- :mod:`diag.k8s.kinds` — the catalogue of the kinds diag reads: API group, versions, plural,
  scope, short names (collect asks discovery for them, the lab's API endpoint serves them, the
  parsers check an object's version against them);
- :mod:`diag.k8s.selectors` — Kubernetes label selectors and Calico's selector expressions,
  evaluated the way the API and the CNIs evaluate them (one rule, one place);
- :mod:`diag.k8s.pointers` — RFC 6901 JSON pointers into stored objects.
"""
