"""Checks shared by the CLI tests: a bad input gives exactly one ``error:`` line, exit 2."""

from __future__ import annotations


def one_line_error(code: int, err: str) -> str:
    """Assert exit code 2 and a single ``error:`` line on stderr; return that line."""
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    return lines[0]


def code_and_err(result: tuple[int, str, str]) -> tuple[int, str]:
    """(exit code, stderr) of a ``cli(...)`` result, for :func:`one_line_error`."""
    return result[0], result[2]
