"""Where the shared test data lives: `../shared` beside the repo (as in CI), or $REGPLAN_SHARED."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REGCLIENT_REPOS = ("testrepo", "external")  # the OCI Layouts in regclient_testdata()


def shared_dir() -> Path:
    """The `shared/` directory: $REGPLAN_SHARED if set, else `<repo root>/../shared`."""
    override = os.environ.get("REGPLAN_SHARED")
    return Path(override).resolve() if override else (REPO_ROOT.parent / "shared").resolve()


def regclient_testdata() -> Path:
    """regsync's OCI Layout test data: `testrepo/` and `external/` (docs/regsync-behaviour.md,
    7. regsync's own test suite)."""
    return shared_dir() / "testdata" / "regclient"
