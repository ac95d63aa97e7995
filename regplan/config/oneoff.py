"""`regplan copy SRC DST`: the one-step config a one-off copy stands for.

The step is written as config text and read by the ordinary loader, so a one-off copy is
validated, defaulted and planned exactly like a step in a file.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import orjson

from regplan.config.model import Config
from regplan.errors import ConfigError, UsageError

LABEL = "<copy>"
_OPTION_RE = re.compile(r"sync\[0\]\.(platforms?|source|target)(\[[0-9]+\])?")
_OPTIONS = {
    "platform": "--platform",
    "platforms": "--platform",
    "source": "SOURCE",
    "target": "TARGET",
}


def _option(m: re.Match[str]) -> str:
    return _OPTIONS[m.group(1)]


@dataclass(frozen=True)
class CopyRequest:
    source: str
    target: str
    platforms: tuple[str, ...] = ()
    referrers: bool = False
    digest_tags: bool = False


def step_text(request: CopyRequest) -> bytes:
    """The config (JSON is YAML) with one image step. One `--platform` is regsync's `platform`
    (the target gets that platform's image); several are `platforms` (an index of those)."""
    step: dict[str, object] = {
        "source": request.source,
        "target": request.target,
        "type": "image",
    }
    if len(request.platforms) == 1:
        step["platform"] = request.platforms[0]
    elif request.platforms:
        step["platforms"] = list(request.platforms)
    if request.referrers:
        step["referrers"] = True
    if request.digest_tags:
        step["digestTags"] = True
    return orjson.dumps({"version": 1, "sync": [step]})


def one_off_config(request: CopyRequest, base: Config | None) -> Config:
    """The copy as a Config; `base` (from -c) lends its creds and global defaults."""
    from regplan.config.loader import load_bytes

    _check_refs(request)
    try:
        config = load_bytes(step_text(request), path=LABEL, label=LABEL)
    except ConfigError as e:
        # the message names the step's key (sync[0].platform: ...): say the option instead
        raise UsageError(_OPTION_RE.sub(_option, e.message)) from None
    if base is None:
        return config
    return dataclasses.replace(base, path=LABEL, digest=config.digest, sync=config.sync)


def _check_refs(request: CopyRequest) -> None:
    from regplan.errors import InvalidReferenceError
    from regplan.refs import ImageRef

    for what, text in (("SOURCE", request.source), ("TARGET", request.target)):
        try:
            ImageRef.parse(text)
        except InvalidReferenceError as e:
            raise UsageError(f"{what} {text!r}: {e}") from None
