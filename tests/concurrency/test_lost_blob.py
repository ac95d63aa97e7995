"""A registry that refuses a manifest for a blob it lost (MANIFEST_BLOB_UNKNOWN, as distribution
2.8 does under concurrent uploads of one blob): regplan copies what the target lacks again and
puts the manifest once more, so the image lands in the same run."""

from __future__ import annotations

import textwrap
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.regplan_cli import regplan, write_config
from tests.servers.distribution import RegistryServer
from tests.servers.faultproxy import Seen
from tests.servers.forgetful import ForgetfulProxy
from tests.watch.bigimage import small_image
from tests.watch.test_watch_integration import head

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def uploaded(s: Seen) -> str:
    """The digest a request finished uploading ("" if it is no upload's closing PUT)."""
    if s.method != "PUT" or "/blobs/uploads/" not in s.path:
        return ""
    return urllib.parse.parse_qs(s.query).get("digest", [""])[0]


def test_a_manifest_refused_for_a_lost_blob_gets_that_blob_again_and_lands(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path
) -> None:
    source, target = registry_factory(), registry_factory()
    image = small_image(source.url, "app", "v1", "lost")
    with ForgetfulProxy(target.host) as proxy:
        cfg = write_config(
            tmp_path,
            textwrap.dedent(f"""
            creds:
              - registry: {source.host}
                tls: disabled
              - registry: {proxy.host}
                tls: disabled
            defaults:
              skipDockerConfig: true
            sync:
              - source: {source.host}/app:v1
                target: {proxy.host}/app:v1
                type: image
            """),
        )
        result = regplan("once", "-c", str(cfg), cwd=tmp_path)
        seen = list(proxy.seen)
    assert result.code == 0, result
    assert head(target, "app", "v1") == image.digest
    assert proxy.refused == 1 and not proxy.forgotten  # refused once; the lost blob came back
    refused = next(i for i, s in enumerate(seen) if s.fault == "blob-unknown")
    after = [(i, uploaded(s)) for i, s in enumerate(seen) if i > refused and uploaded(s)]
    # only the lost layer was copied again, once; the config the registry kept was not
    assert [d for _, d in after] == [image.layer], seen
    final = [s for s in seen[after[0][0] :] if s.method == "PUT" and "/manifests/" in s.path]
    assert [s.status for s in final] == [201]
    assert "Registry refused the manifest for a blob it lacks; copying it again" in result.stderr
