"""The public surface: stubs in sync with the extension, docstrings everywhere."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import shmbus
import shmbus._native as native
import shmbus.config
import shmbus.consumers
import shmbus.events

STUB = Path(shmbus.__file__).with_name("_native.pyi")


def stub_names() -> dict:
    """Top-level names of the stub, and for classes the names of their members."""
    tree = ast.parse(STUB.read_text())
    names: dict = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = {
                n.name if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) else n.target.id
                for n in node.body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                or (isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name))
            }
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = set()
    return names


def public_members(cls) -> set:
    return {n for n in vars(cls) if not n.startswith("_") or n in {"_wait"}}


def test_every_public_name_of_the_package_is_in_the_stub():
    stubs = stub_names()
    for name in shmbus.__all__:
        assert name in stubs, f"{name} is missing from _native.pyi"
        assert getattr(shmbus, name) is getattr(native, name)


def test_every_public_name_of_the_extension_is_exported_and_stubbed():
    stubs = stub_names()
    public = {n for n in dir(native) if not n.startswith("_") or n == "__version__"}
    assert public <= set(shmbus.__all__)
    assert public <= set(stubs)


@pytest.mark.parametrize("cls", [shmbus.Bus, shmbus.Subscriber, shmbus.Message], ids=lambda c: c.__name__)
def test_every_method_and_property_of_the_classes_is_in_the_stub(cls):
    stubbed = stub_names()[cls.__name__]
    missing = public_members(cls) - stubbed
    assert not missing, f"{cls.__name__} members missing from _native.pyi: {sorted(missing)}"
    extra = {n for n in stubbed if not n.startswith("__")} - public_members(cls)
    assert not extra, f"_native.pyi has members that {cls.__name__} lacks: {sorted(extra)}"


def _documented(obj) -> bool:
    return bool(inspect.getdoc(obj)) and len(inspect.getdoc(obj)) > 10


@pytest.mark.parametrize("module", [shmbus, shmbus.events, shmbus.config, shmbus.consumers], ids=lambda m: m.__name__)
def test_every_public_name_has_a_docstring(module):
    assert _documented(module)
    undocumented = []
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj)):
            continue
        if not _documented(obj):
            undocumented.append(name)
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                if member.startswith("_") or not (callable(value) or isinstance(value, property)
                                                  or type(value).__name__ == "getset_descriptor"):
                    continue
                if not _documented(getattr(obj, member)):
                    undocumented.append(f"{name}.{member}")
    assert not undocumented, f"no docstring: {undocumented}"


def test_py_typed_marker_and_stub_ship_with_the_package():
    here = Path(shmbus.__file__).parent
    assert (here / "py.typed").is_file()
    assert STUB.is_file()
