"""OCI and Docker value types: media types, digests, descriptors, platforms, manifests."""
