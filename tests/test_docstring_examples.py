"""Every name of ``lipot.__all__`` documents its parameters and shows an example, and every
example runs (doctest) with the output it prints."""

from __future__ import annotations

import doctest
import inspect

import pytest
import torch

import lipot

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _doc(name: str) -> str:
    return inspect.getdoc(getattr(lipot, name)) or ""


@pytest.mark.parametrize("name", lipot.__all__)
def test_public_name_has_parameters_and_an_example(name):
    doc = _doc(name)
    assert ">>> " in doc, f"lipot.{name}: no example (a '>>>' block)"
    obj = getattr(lipot, name)
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = [p for p in inspect.signature(target).parameters if p not in ("self", "args", "kwargs")]
    if params:
        assert any(s in doc for s in ("Args:", "Attributes:")), f"lipot.{name}: no Args / Attributes section"


@pytest.mark.parametrize("name", lipot.__all__)
def test_example_runs(name):
    obj = getattr(lipot, name)
    tests = doctest.DocTestFinder(recurse=False).find(obj, f"lipot.{name}", globs={"lipot": lipot, "torch": torch})
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    torch.manual_seed(0)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0, f"lipot.{name}: {result}"
