"""Real servers the test suite runs against (no mocks instead of a registry).

- `distribution.RegistryServer`: CNCF distribution 2.8 (`docker-registry`) — HTTP, TLS, htpasswd,
  token auth, read-only; `.requests()` parses its access log.
- `tokenserver.TokenServer`: issues the JWTs distribution's token auth accepts, records requests.
- `ociregistry.OCIRegistry`: a small Python registry with the OCI referrers API.
- `skopeo`: the `skopeo` CLI for pushing/pulling/inspecting, and `seed_layout` for seeding a
  registry from an OCI Layout with identical digests; `rawpush` pushes what skopeo 1.9 cannot.
- `certs`: CA and certificates via the openssl CLI; `paths`: where ../shared lives.
The fixtures that wrap these are in tests/conftest.py.
"""
