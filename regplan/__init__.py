"""regplan: mirror container images between OCI registries with plan, review, apply."""

__version__ = "0.1.0"
