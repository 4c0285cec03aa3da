"""``podshim hook``'s own argv parser agrees with its argparse parser on every command line it
accepts, and leaves every other one to argparse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.frontends import cli, hook
from shim.frontends.errors import UsageError

OPTIONS = ["--socket", "--timeout", "--config", "--state-dir", "--pod-dir", "--topology", "--sysfs-root"]
WORDS = st.sampled_from(["createRuntime", "poststop", "prestart", "/run/p.sock", "1.5", "-3", "x", "-", "--",
                         "-h", "--help", "--sock", "--bogus", "--timeout=2", "--config=/etc/k.yaml", "a=b", ""])


def argparse_view(argv: list[str]) -> hook.HookArgs | None:
    try:
        namespace = cli.build_parser(["hook", *argv]).parse_args(["hook", *argv])
    except (UsageError, SystemExit):
        return None
    return hook.HookArgs.from_namespace(namespace)


@given(st.lists(st.one_of(st.sampled_from(OPTIONS), WORDS), max_size=8))
def test_fast_parser_is_argparse_or_defers(argv: list[str]) -> None:
    fast = hook.parse_argv(argv)
    if fast is not None:
        assert fast == argparse_view(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["createRuntime"],
        ["--socket", "/run/podshim.sock", "poststop"],
        ["createRuntime", "--state-dir=/var/lib/podshim", "--pod-dir", "/etc/pods", "--timeout", "2.5"],
        ["--config", "/etc/k.json", "--sysfs-root", "/", "--socket=/s", "prestart"],
        ["--topology", "/t.json", "createRuntime", "--config", "a", "--config", "b"],
    ],
)
def test_plain_command_lines_are_parsed_without_argparse(argv: list[str]) -> None:
    fast = hook.parse_argv(argv)
    assert fast is not None and fast == argparse_view(argv)


@pytest.mark.parametrize(
    "argv",
    [
        [], ["-h"], ["--help"], ["a", "b"], ["--sock", "/s", "createRuntime"], ["--socket", "createRuntime"],
        ["--timeout", "soon", "createRuntime"], ["--topology", "t", "--sysfs-root", "/", "createRuntime"],
        ["--", "createRuntime"], ["--socket"], ["--timeout", "soon", "--timeout=2", "createRuntime"],
    ],
)
def test_unusual_command_lines_go_to_argparse(argv: list[str]) -> None:
    assert hook.parse_argv(argv) is None


def test_argparse_reports_what_the_fast_parser_declines(capsys: pytest.CaptureFixture[str]) -> None:
    assert hook.main(["--timeout", "soon", "createRuntime"]) == 2
    assert capsys.readouterr().err == "podshim hook: argument --timeout: invalid float value: 'soon'\n"
    assert hook.main([]) == 2
    assert "the following arguments are required: STAGE" in capsys.readouterr().err
