"""Exceptions that the command line turns into one clear line and exit code 2."""

from __future__ import annotations


class GenphysError(Exception):
    """A problem with the user's input: data, configuration, run directory or checkpoint.

    The CLI prints ``error: <message>`` on one line and exits with code 2.
    """


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss or parameter; the last good checkpoint is kept."""
