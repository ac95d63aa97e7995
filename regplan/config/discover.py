"""Find the config file: -c wins; else regplan.yml, then regsync.yml, in the current directory."""

from __future__ import annotations

from pathlib import Path

from regplan import logs
from regplan.errors import ConfigError

_CANDIDATES = ("regplan.yml", "regsync.yml")
log = logs.get(__name__)


def find_config(given: str | None) -> str:
    if given:
        return given
    for name in _CANDIDATES:
        if Path(name).is_file():
            log.info("Using config file", file=name)
            return name
    raise ConfigError("no config file: pass -c FILE, or create regplan.yml or regsync.yml here")
