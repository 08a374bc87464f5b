"""The public namespace as a user meets it (issue 11 item 6): type checkers
find the annotations (PEP 561 marker installed with the package), and
``help()`` of every public function shows its signature, what it returns and
an example."""

import importlib.resources
import inspect

import pytest

import symdl


def test_the_py_typed_marker_is_installed_with_the_package():
    assert (importlib.resources.files("symdl") / "py.typed").is_file()


PUBLIC = sorted(n for n in symdl.__all__ if callable(getattr(symdl, n))
                and not (inspect.isclass(getattr(symdl, n)) and issubclass(getattr(symdl, n), Warning)))


@pytest.mark.parametrize("name", PUBLIC)
def test_help_shows_a_signature_and_an_example(name):
    obj = getattr(symdl, name)
    inspect.signature(obj)  # raises if there is none to show
    doc = inspect.getdoc(obj) or ""
    assert len(doc.splitlines()[0]) > 10, f"{name}: no summary line"
    assert ">>>" in doc, f"{name}: no example in the docstring"
