"""`plan --sign-key` / `apply --verify-key` on the bundled example, with keys made by the
openssl commands docs/ci.md gives."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from regplan.plan.planfile import integrity_of
from tests.conftest import require_tools
from tests.regplan_cli import REPO_ROOT, regplan

CONFIG = "fixtures/example/regplan.yml"


def make_keys(directory: Path, name: str) -> tuple[Path, Path]:
    """The commands of docs/ci.md, "Signed plans"."""
    require_tools("openssl")
    key, pub = directory / f"{name}.pem", directory / f"{name}.pub"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)],
        check=True,
        capture_output=True,
    )
    return key, pub


@pytest.fixture
def example(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "fixtures" / "example", tmp_path / "fixtures" / "example")
    return tmp_path


def _refused(example: Path, plan: str, pub: Path, expected: str) -> None:
    result = regplan("apply", plan, "--verify-key", str(pub), cwd=example)
    assert result.code == 1, str(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], str(result)
    assert not (example / "demo-target").exists()


def test_only_a_plan_signed_by_the_key_is_applied(example: Path) -> None:
    key, pub = make_keys(example, "plan-key")
    _, other_pub = make_keys(example, "other")
    signed = regplan("plan", "-c", CONFIG, "-o", "signed.json", "--sign-key", str(key), cwd=example)
    assert signed.code == 0, str(signed)
    assert regplan("plan", "-c", CONFIG, "-o", "unsigned.json", cwd=example).code == 0
    body = orjson.loads((example / "signed.json").read_bytes())
    assert body["signature"]["algorithm"] == "ed25519"
    assert body["format_version"] == "1.1"

    _refused(example, "unsigned.json", pub, "the plan is not signed")
    _refused(example, "signed.json", other_pub, "signed by another key")
    # an edit resealed with a recomputed integrity, the signature block kept
    body["actions"][0]["bytes"] = body["actions"][0]["bytes"] + 1
    body.pop("integrity")
    body["integrity"] = integrity_of(body)
    (example / "edited.json").write_bytes(orjson.dumps(body))
    _refused(example, "edited.json", pub, "changed after it was signed")

    # show reads signed plans; apply without --verify-key ignores the block
    assert regplan("show", "signed.json", cwd=example).code == 0
    applied = regplan("apply", "signed.json", "--verify-key", str(pub), cwd=example)
    assert applied.code == 0, str(applied)
    assert (example / "demo-target" / "app" / "index.json").exists()


def test_sign_key_problems_are_reported_before_planning(example: Path) -> None:
    key, pub = make_keys(example, "plan-key")
    no_out = regplan("plan", "-c", CONFIG, "--sign-key", str(key), cwd=example)
    assert no_out.code == 2 and "give it with -o" in no_out.stderr, str(no_out)
    wrong = regplan("plan", "-c", CONFIG, "-o", "p.json", "--sign-key", str(pub), cwd=example)
    assert wrong.code == 1 and "not an unencrypted PEM private key" in wrong.stderr
    assert not (example / "p.json").exists()
    no_plan = regplan("apply", "-c", CONFIG, "--verify-key", str(pub), cwd=example)
    assert no_plan.code == 2 and "give the plan file" in no_plan.stderr, str(no_plan)
    assert not (example / "demo-target").exists()
    assert "Traceback" not in wrong.stderr + no_out.stderr + no_plan.stderr
