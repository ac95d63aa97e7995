"""The Go text/template engine: Go's semantics for the subset regsync configs use."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regplan.config.template import render
from regplan.errors import TemplateError
from regplan.gotemplate import GoStruct, go_sprintf
from regplan.gotemplate.gotime import GoDuration, GoTime, format_time, parse_time

SYNC = GoStruct(
    "regsync.ConfigSync",
    (
        ("Source", "gcr.io/example/repo"),
        ("Target", "registry:5000/x"),
        ("Type", "repository"),
        ("Interval", GoDuration(3600 * 10**9)),
        ("Tags", GoStruct("regsync.TagAllowDeny", (("Allow", ["3", "3.9"]),))),
    ),
)
DATA = {"Sync": SYNC, "List": ["a", "b", "c"], "Map": {"b": 2, "a": 1}, "Empty": "", "N": 3}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("plain text", "plain text"),
        ("{{ .Sync.Source }}", "gcr.io/example/repo"),
        ('{{ index (split .Sync.Source "gcr.io/") 1 }}', "example/repo"),
        ("registry:5000/hub/{{ .Sync.Source }}", "registry:5000/hub/gcr.io/example/repo"),
        ("{{ .Sync.Interval }}", "1h0m0s"),
        ("{{ .Sync.Tags.Allow }}", "[3 3.9]"),
        ("{{ $.Sync.Type }}", "repository"),
        # trim markers
        ("a  {{- 1 -}}  b", "a1b"),
        ("a  {{ 1 -}}\n\n  b", "a  1b"),
        ("a\n  {{- 1 }}  b", "a1  b"),
        ("{{ -1 }}", "-1"),  # "-1" is a number, not a trim marker
        ("x {{/* a comment */}} y", "x  y"),
        ("x {{- /* a comment */ -}} y", "xy"),
        # missing keys and nil data
        ("{{ .Missing }}", "<no value>"),
        ("{{ .Map.z }}", "<no value>"),
        ("{{ .Map.a }}", "1"),
        # literals
        ('{{ "a\\tb" }}', "a\tb"),
        ("{{ `raw\\n` }}", "raw\\n"),
        ("{{ 42 }} {{ 1.5 }} {{ 1e6 }} {{ 0x10 }} {{ 'a' }} {{ true }}", "42 1.5 1e+06 16 97 true"),
        # pipelines, parentheses, variables
        ('{{ "abc" | upper }}', "ABC"),
        ('{{ "  x  " | trimSpace | printf "[%s]" }}', "[x]"),
        ('{{ $x := "v" }}{{ $x }}{{ $x = "w" }}{{ $x }}', "vw"),
        ("{{ (len .List) }}", "3"),
        ('{{ join .List "," }}', "a,b,c"),
        ("{{ index .List 1 }}", "b"),
        ('{{ index .Map "b" }}', "2"),
        ("{{ slice .List 1 }}", "[b c]"),
        ('{{ slice "hello" 1 3 }}', "el"),
        ('{{ len .Map }} {{ len "héllo" }}', "2 6"),  # len of a string counts bytes
        # conditionals
        ("{{ if .Empty }}yes{{ else }}no{{ end }}", "no"),
        ("{{ if .N }}yes{{ end }}", "yes"),
        ("{{ if eq .N 1 }}one{{ else if eq .N 3 }}three{{ else }}many{{ end }}", "three"),
        ("{{ if and .N .Empty }}a{{ else }}b{{ end }}", "b"),
        ("{{ or .Empty .N }}", "3"),
        ("{{ and .N .Empty }}", ""),
        ("{{ not .Empty }}", "true"),
        ('{{ if ne .Sync.Type "image" }}multi{{ end }}', "multi"),
        ("{{ if lt 1 2 }}lt{{ end }}{{ if ge 2 2 }}ge{{ end }}", "ltge"),
        ('{{ if gt "b" "a" }}gt{{ end }}', "gt"),
        ("{{ eq .N 1 2 3 }}", "true"),
        ("{{ eq .Missing nil }}", "true"),
        # with / range
        ("{{ with .Sync }}{{ .Type }}{{ end }}", "repository"),
        ("{{ with .Empty }}x{{ else }}empty{{ end }}", "empty"),
        ("{{ with .Empty }}x{{ else with .N }}{{ . }}{{ end }}", "3"),
        ("{{ range .List }}{{ . }}{{ end }}", "abc"),
        ("{{ range $i, $v := .List }}{{ $i }}{{ $v }}{{ end }}", "0a1b2c"),
        ("{{ range $k, $v := .Map }}{{ $k }}={{ $v }};{{ end }}", "a=1;b=2;"),
        ("{{ range .Nothing }}x{{ else }}none{{ end }}", "none"),
        ("{{ range 3 }}{{ . }}{{ end }}", "012"),
        ('{{ range .List }}{{ if eq . "b" }}{{ break }}{{ end }}{{ . }}{{ end }}', "a"),
        ('{{ range .List }}{{ if eq . "b" }}{{ continue }}{{ end }}{{ . }}{{ end }}', "ac"),
        ("{{ range $v := .List }}{{ $v }}{{ $.N }}{{ end }}", "a3b3c3"),
        # regsync functions
        ('{{ env "REGPLAN_TEST_UNSET_VAR" | default "fallback" }}', "fallback"),
        ('{{ default "d" "given" }}', "given"),
        ('{{ default "d" 0 }}', "d"),
        ('{{ lower "ABC" }}{{ upper "def" }}', "abcDEF"),
        ("{{ json .List }}", '["a","b","c"]\n'),
        ('{{ json "<&>" }}', '"<&>"\n'),  # HTML escaping off, as regsync sets it
        ("{{ jsonPretty .Map }}", '{\n  "a": 1,\n  "b": 2\n}\n'),
        ('{{ file "/nonexistent/regplan/secret" }}', ""),  # unreadable file gives ""
        ('{{ split "a,b" "," }}', "[a b]"),
        # print family
        ('{{ print "a" 1 2 "b" }}', "a1 2b"),
        ('{{ println "a" 1 }}', "a 1\n"),
        ('{{ printf "%s=%d" "x" 5 }}', "x=5"),
        ('{{ printf "%v %q %x %X" .List "q" 255 "hi" }}', '[a b c] "q" ff 6869'),
        (
            '{{ printf "%05d|%-4s|%4s|%.2f|%t" 42 "ab" "cd" 3.14159 true }}',
            "00042|ab  |  cd|3.14|true",
        ),
        ('{{ printf "%d" "str" }}', "%!d(string=str)"),
        ('{{ printf "%s %s" "one" }}', "one %!s(MISSING)"),
        ('{{ printf "%s" "a" "b" }}', "a%!(EXTRA string=b)"),
        ('{{ printf "%%" }}', "%"),
        ("{{ html \"<a href='x'>\" }}", "&lt;a href=&#39;x&#39;&gt;"),
        ('{{ urlquery "a b&c" }}', "a+b%26c"),
        # time
        ('{{ (time.Parse "2006-01-02" "2024-03-05").Format "Jan 2, 2006" }}', "Mar 5, 2024"),
        (
            '{{ (time.Parse "2006-01-02T15:04:05Z07:00" "2024-03-05T10:11:12+02:00").Unix }}',
            "1709626272",
        ),
        (
            '{{ $t := time.Parse "2006-01-02" "2024-12-31" }}{{ $t.Year }} {{ $t.Month }} {{ $t.Day }} {{ $t.Weekday }}',
            "2024 December 31 Tuesday",
        ),
        (
            '{{ (time.Parse "2006-01-02 15:04:05" "2024-01-02 03:04:05").Format "3:04PM Monday 02/01/06" }}',
            "3:04AM Tuesday 02/01/24",
        ),
        (
            '{{ (time.Parse "2006-01-02" "2024-01-02").Format "2006-01-02T15:04:05Z07:00" }}',
            "2024-01-02T00:00:00Z",
        ),
        ('{{ eq (time.Parse "2006" "2024").Month 1 }}', "true"),
    ],
)
def test_render(text: str, want: str) -> None:
    assert render(text, DATA) == want


def test_nil_data_renders_no_value() -> None:
    assert render("{{ .X }}/{{ .X.Y }}", None) == "<no value>/<no value>"


def test_time_now() -> None:
    year = time.localtime().tm_year
    assert render("{{ time.Now.Year }}", None) == str(year)
    assert render('{{ (time.Now).Format "2006" }}', None) == str(year)
    assert int(render("{{ time.Now.Unix }}", None)) == pytest.approx(time.time(), abs=5)


def test_file_reads_and_trims(tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "token"
    secret.write_text("  s3cret\n")
    assert render('{{ file "' + str(secret) + '" }}', None) == "s3cret"
    assert render('{{ file "' + str(tmp_path) + '" }}', None) == ""  # a directory: ""


def test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGPLAN_TEST_VAR", "from-env")
    assert render('{{ env "REGPLAN_TEST_VAR" | default "x" }}', None) == "from-env"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ .Sync.Nope }}", "can't evaluate field Nope in type regsync.ConfigSync"),
        ("{{ nope }}", 'function "nope" not defined'),
        ("{{ .A", "unclosed action"),
        ("{{ if .A }}x", "unexpected EOF"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ else }}", "unexpected {{else}}"),
        ("{{ $x }}", 'undefined variable "$x"'),
        ("{{ nil }}", "nil is not a command"),
        ('{{ "a" "b" }}', "can't give argument to non-function"),
        ("{{ index .List 9 }}", "index out of range: 9"),
        ("{{ upper 3 }}", "expected string; got int"),
        ('{{ eq 1 "a" }}', "incompatible types for comparison"),
        ("{{ lt true false }}", "invalid type for comparison"),
        ('{{ (time.Parse "2006-01-02" "nope").Year }}', 'cannot parse "nope" as "2006"'),
        ("{{ break }}", "{{break}} outside {{range}}"),
        ('{{ define "x" }}{{ end }}', "not supported"),
        ('{{ "unterminated }}', "unterminated quoted string"),
        ("{{ (1 }}", "unclosed left paren"),
        ("{{ 1) }}", "unexpected right paren"),
        ("{{ /* bad */ }}", "unrecognized character"),
        ("{{/* unclosed }}", "unclosed comment"),
        ("{{ 1 | 2 }}", "non executable command"),
        ("{{ @ }}", "unrecognized character"),
        ("{{ 0x }}", "bad number syntax"),
        ("{{ }}", "missing value for command"),
        ("{{ printf }}", "wrong number of args for printf"),
        ("{{ range .Sync }}x{{ end }}", "range can't iterate over"),
        ("{{ .Sync.Source 1 }}", "Source has arguments but cannot be invoked as function"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(text, DATA, name="sync[0].source")
    assert message in str(info.value)
    assert str(info.value).startswith("template: sync[0].source:1:")


def test_error_position_is_line_and_column() -> None:
    with pytest.raises(TemplateError, match=r"template: t:2:7: executing at <\.Nope\.X>"):
        render("x\nab {{ .Nope.X }}", GoStruct("T", ()), name="t")


@pytest.mark.parametrize(
    "text",
    [
        "(" * 5000,
        "{{" + "(" * 500 + "1" + ")" * 500 + "}}",
        "{{ if 1 }}" * 200 + "{{ end }}" * 200,
        "{{ range 100000000 }}{{ end }}",
        '{{ $a := printf "%999999d" 1 }}{{ $b := print $a $a }}{{ $c := print $b $b }}',
        "{{ range 1000000 }}x{{ end }}",
        '{{ printf "%99999999999d" 1 }}',
    ],
)
@pytest.mark.timeout(120)  # a hang fails here; no wall-time assertion
def test_hostile_input_is_bounded(text: str) -> None:
    try:
        out = render(text, None)
    except TemplateError:
        pass
    else:
        assert len(out) <= 1 << 20


@pytest.mark.parametrize(
    ("fmt", "args", "want"),
    [
        ("%v", [[1, 2]], "[1 2]"),
        ("%+v", [GoStruct("T", (("A", 1), ("B", "x")))], "{A:1 B:x}"),
        ("%v", [GoStruct("T", (("A", 1), ("B", "x")))], "{1 x}"),
        ("%T %T %T", ["s", 1, [1]], "string int []interface {}"),
        ("%8.3f|%-8d|%+d", [3.14159, 7, 7], "   3.142|7       |+7"),
        ("%e %g %G", [123456.789, 0.000012, 1e21], "1.234568e+05 1.2e-05 1E+21"),
        ("%c%c", [72, 105], "Hi"),
        ("%#x %o %b", [255, 8, 5], "0xff 10 101"),
        ("%q", [10], "'\\n'"),
        ("%s", [None], "%!s(<nil>)"),
        ("%d", [[1, 2]], "[1 2]"),
        ("%!", [], "%!!(NOVERB)"),
    ],
)
def test_sprintf(fmt: str, args: list[object], want: str) -> None:
    if fmt == "%!":
        assert go_sprintf("%", []) == "%!(NOVERB)"
        return
    assert go_sprintf(fmt, args) == want


@pytest.mark.parametrize(
    ("layout", "value", "back"),
    [
        ("2006-01-02T15:04:05Z07:00", "2024-02-29T23:59:58-07:00", "2024-02-29T23:59:58-07:00"),
        ("2006-01-02T15:04:05.000Z", "2024-01-01T00:00:00.123Z", "2024-01-01T00:00:00.123Z"),
        ("Jan _2 15:04:05 2006", "Feb  3 04:05:06 2021", "Feb  3 04:05:06 2021"),
        (
            "Monday, 02-Jan-06 15:04:05 MST",
            "Sunday, 05-May-24 10:00:00 UTC",
            "Sunday, 05-May-24 10:00:00 UTC",
        ),
        ("20060102", "19991231", "19991231"),
        ("3:04PM", "11:30PM", "11:30PM"),
    ],
)
def test_time_layouts_round_trip(layout: str, value: str, back: str) -> None:
    assert parse_time(layout, value).format(layout) == back


def test_time_parse_fraction_without_layout() -> None:
    t = parse_time("2006-01-02 15:04:05", "2024-01-02 03:04:05.5")
    assert t.format("05.000") == "05.500"
    assert format_time(t.t, t.ns, ".999") == ".5"


@pytest.mark.parametrize(
    ("layout", "value"),
    [
        ("2006-01-02", "2024-02-30"),
        ("2006-01-02", "2024-13-01"),
        ("15:04", "25:00"),
        ("2006", "24"),
    ],
)
def test_time_parse_errors(layout: str, value: str) -> None:
    with pytest.raises(ValueError, match="parsing time"):
        parse_time(layout, value)


def test_go_time_string() -> None:
    t = parse_time("2006-01-02T15:04:05Z07:00", "2024-01-02T03:04:05Z")
    assert str(t) == "2024-01-02 03:04:05 +0000 UTC"
    assert isinstance(GoTime.now(), GoTime)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="{}-/*.$()|:=\"`' aA1ifendrangewithelse\n\\_,", max_size=40))
def test_parser_raises_only_template_errors(text: str) -> None:
    try:
        render(text, DATA)
    except TemplateError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_arbitrary_text_raises_only_template_errors(text: str) -> None:
    try:
        render("{{" + text + "}}", DATA)
    except TemplateError:
        pass
