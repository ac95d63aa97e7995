"""Real servers the test suite runs against (no mocks instead of a registry).

- `distribution.RegistryServer`: CNCF distribution 2.8 (`docker-registry`) — HTTP, TLS, htpasswd,
  token auth, read-only.
- `tokenserver.TokenServer`: issues the JWTs distribution's token auth accepts.
- `ociregistry.OCIRegistry`: a small Python registry with the OCI referrers API.
- `skopeo`: the `skopeo` CLI for pushing/pulling/inspecting, and seeding from OCI Layouts.
"""
