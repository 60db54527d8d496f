"""console.hidden_modules: how Keras is imported without the optional packages it would load."""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from fruitlens.console import hidden_modules


def test_a_hidden_module_fails_to_import_only_inside_the_block(tmp_path, monkeypatch):
    (tmp_path / "optional_extra.py").write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "optional_extra", raising=False)
    with hidden_modules(("optional_extra",)), pytest.raises(ImportError):
        importlib.import_module("optional_extra")
    assert importlib.import_module("optional_extra").VALUE == 7
    sys.modules.pop("optional_extra")


def test_a_module_already_imported_stays_importable():
    with hidden_modules(("json",)):
        assert importlib.import_module("json") is json
    assert sys.modules["json"] is json
