"""`regplan version`: our version, Python's, and the dependencies'."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from regplan import __version__

_DEPENDENCIES = (
    "typer",
    "strictyaml",
    "PyYAML",
    "httpx",
    "rich",
    "networkx",
    "orjson",
    "croniter",
    "google-re2",
    "prometheus-client",
)


def version_text() -> str:
    lines = [
        f"regplan {__version__}",
        f"python {sys.version.split()[0]} ({platform.python_implementation()})",
        f"platform {sys.platform}/{platform.machine()}",
    ]
    for name in _DEPENDENCIES:
        try:
            lines.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            lines.append(f"{name} (not installed)")
    return "\n".join(lines)
