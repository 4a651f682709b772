"""Shared helpers for command-line tests: run the real CLI group in process, check errors."""

from __future__ import annotations

from click.testing import CliRunner, Result

from disclosure_ledger._cli.main import cli

ERROR_PREFIX = "disclosure-ledger: error: "


def run(*args: object, input: str | bytes | None = None) -> Result:  # noqa: A002 - click's name
    """Invoke the CLI in process; no outcome may be an uncaught exception or a traceback."""
    result = CliRunner().invoke(cli, [str(a) for a in args], input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr
    return result


def assert_one_line_error(result: Result, code: int, *needles: str) -> str:
    """The result failed with ``code`` and exactly one ``disclosure-ledger: error:`` line."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(ERROR_PREFIX), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
