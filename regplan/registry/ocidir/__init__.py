"""The OCI Layout backend (`ocidir://`): see backend.py."""

from regplan.registry.ocidir.backend import CREATED, LAYOUT_VERSION, OCIDirBackend
from regplan.registry.ocidir.index import REF_NAME

__all__ = ["CREATED", "LAYOUT_VERSION", "REF_NAME", "OCIDirBackend"]
