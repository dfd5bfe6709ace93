"""The examples in genphys's docstrings run and print what they show (doctest)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import genphys


def _with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(genphys.__path__, "genphys."):
        if info.name.endswith("__main__"):
            continue
        tests = doctest.DocTestFinder().find(importlib.import_module(info.name))
        if any(t.examples for t in tests):
            names.append(info.name)
    return sorted(names)


MODULES = _with_examples()


def test_the_docstring_examples_are_found() -> None:
    assert {"genphys.evaluation.stats", "genphys.data.toy", "genphys.rng"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(importlib.import_module(name), optionflags=flags)
    assert result.attempted > 0 and result.failed == 0, result
