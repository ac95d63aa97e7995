"""`config validate` reports what loads but fails or does nothing later: errors exit 1 with
file:line, warnings (what regsync accepts and ignores) are listed and the config is ok."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.regplan_cli import regplan, write_config

HOURLY = "defaults:\n  interval: 1h\nsync:\n"  # a schedule, so no step warns for lack of one


def hourly_mirror(backup: str) -> str:
    """An hourly repository step r.example.org/app to r.example.org/mirror with `backup`."""
    return (
        HOURLY + "  - source: r.example.org/app\n    target: r.example.org/mirror\n"
        f"    type: repository\n    backup: {backup}\n"
    )


def validate(tmp_path: Path, text: str) -> tuple[int, list[str], str]:
    write_config(tmp_path, text)
    result = regplan("config", "validate", "-c", "regplan.yml", cwd=tmp_path)
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    return result.code, warnings, result.stdout + result.stderr


def test_backup_template_with_a_wrong_field_is_an_error(tmp_path: Path) -> None:
    code, _, out = validate(
        tmp_path,
        """
        sync:
          - source: r.example.org/app
            target: r.example.org/mirror
            type: repository
            backup: "{{ .Ref.Tag }}-{{ .Ref.Tagg }}"
        """,
    )
    assert code == 1
    assert "regplan.yml:5:13: template: sync[0].backup" in out
    assert "can't evaluate field Tagg in type ref.Ref" in out


def test_backup_template_that_depends_on_the_tag_is_not_refused(tmp_path: Path) -> None:
    # index 1 of split on "-" fails for the example tag `latest`, not for real ones
    code, _, out = validate(tmp_path, hourly_mirror("""'{{ index (split .Ref.Tag "-") 1 }}-old'"""))
    assert code == 0, out


@pytest.mark.parametrize(
    ("entry", "where", "message"),
    [
        (
            "    type: image\n    tags:\n      allow: [v1]\n",
            "regplan.yml:8:7",
            "sync[0].tags: ignored on an image step",
        ),
        (
            "    type: image\n    tagSets:\n      - allow: [v1]\n",
            "regplan.yml:8:7",
            "sync[0].tagSets: ignored on an image step",
        ),
        (
            "    type: image\n    repos:\n      allow: [a]\n",
            "regplan.yml:8:7",
            "sync[0].repos: ignored on an image step",
        ),
        (
            "    type: image\n    platform: linux/amd64\n    platforms: [linux/arm64]\n",
            "regplan.yml:8:16",
            "sync[0].platforms: ignored because platform is set",
        ),
    ],
)
def test_keys_regsync_ignores_are_warnings(
    tmp_path: Path, entry: str, where: str, message: str
) -> None:
    text = HOURLY + "  - source: r.example.org/app:1\n    target: r.example.org/mirror:1\n" + entry
    code, warnings, out = validate(tmp_path, text)
    assert code == 0, out
    assert len(warnings) == 1 and warnings[0].startswith(f"{where}: warning: {message}")
    assert "regplan.yml: ok (1 sync step, 1 warning)\n" in out


def test_step_without_schedule_warns_and_watch_refuses_to_run_nothing(tmp_path: Path) -> None:
    text = """
        sync:
          - source: ocidir://src/app
            target: ocidir://dst/app
            type: repository
        """
    code, warnings, _ = validate(tmp_path, text)
    assert code == 0
    assert warnings == [
        "regplan.yml:2:5: warning: sync[0]: neither schedule nor interval (here or in defaults): "
        "watch never runs this step"
    ]
    watch = regplan("watch", "-c", "regplan.yml", "--listen", "", cwd=tmp_path, timeout=30)
    assert watch.code == 1
    assert "no sync step has a schedule or interval, so watch would never run one" in watch.stderr


def test_schedule_in_defaults_counts(tmp_path: Path) -> None:
    code, warnings, _ = validate(
        tmp_path,
        """
        defaults:
          schedule: "0 3 * * *"
        sync:
          - source: ocidir://src/app
            target: ocidir://dst/app
            type: repository
        """,
    )
    assert (code, warnings) == (0, [])


@pytest.mark.parametrize(
    ("source", "target", "kind"),
    [
        ("r.example.org/app", "r.example.org/app", "repository"),
        ("docker.io/library/alpine:3", "alpine:3", "image"),
        ("r.example.org", "r.example.org", "registry"),
    ],
)
def test_source_equal_to_target_warns(tmp_path: Path, source: str, target: str, kind: str) -> None:
    code, warnings, _ = validate(
        tmp_path, HOURLY + f"  - source: {source}\n    target: {target}\n    type: {kind}\n"
    )
    assert code == 0
    assert (
        len(warnings) == 1
        and "regplan.yml:5:13: warning: sync[0]: source and target are the same" in warnings[0]
    )


def test_file_template_reading_a_missing_file_warns(tmp_path: Path) -> None:
    (tmp_path / "present").write_text("secret\n")
    code, warnings, out = validate(
        tmp_path,
        "creds:\n  - registry: r.example.org\n"
        f"""    user: '{{{{ file "{tmp_path}/present" }}}}'\n"""
        f"""    pass: '{{{{ file "{tmp_path}/absent" }}}}'\n"""
        + hourly_mirror(f"""'bak-{{{{ file "{tmp_path}/tagfile" }}}}'"""),
    )
    assert code == 0, out
    assert warnings == [
        f'regplan.yml:4:11: warning: creds[0].pass: file "{tmp_path}/absent" does not exist; '
        'the template reads it as ""',
        f'regplan.yml:11:13: warning: sync[0].backup: file "{tmp_path}/tagfile" does not exist; '
        'the template reads it as ""',
    ]


def test_plan_logs_the_warnings_too(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        """
        sync:
          - source: ocidir://src/app:1
            target: ocidir://dst/app:1
            type: image
            tags:
              allow: [v1]
        """,
    )
    result = regplan("plan", "-c", "regplan.yml", cwd=tmp_path)
    assert "sync[0].tags: ignored on an image step" in result.stderr
    assert "watch never runs" not in result.stderr  # only watch and validate care


def test_a_clean_config_has_no_warnings() -> None:
    result = regplan("config", "validate", "-c", "fixtures/example/regplan.yml")
    assert result.code == 0 and "warning" not in result.stderr
    assert result.stdout == "fixtures/example/regplan.yml: ok (2 sync steps)\n"
