"""labrram's public API is documented: every name a notebook user imports from ``labrram`` has
a numpy-style docstring (functions: a Parameters section naming every parameter), so do the
public methods and properties of the exported classes, and the API reference page lists every
exported name."""

from __future__ import annotations

import dataclasses
import inspect
import re
import tomllib
from pathlib import Path

import labrram

ROOT = Path(__file__).resolve().parent.parent
_SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}$", re.M)


def own_doc(obj) -> str | None:
    """The docstring written for ``obj`` (not inherited, not the one dataclasses generate)."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if not doc or not doc.strip():
        return None
    if isinstance(obj, type) and dataclasses.is_dataclass(obj) and doc.startswith(obj.__name__ + "("):
        return None
    return inspect.cleandoc(doc)


def undocumented_parameters(fn) -> list[str]:
    """Parameters of ``fn`` that its docstring's Parameters section does not name."""
    doc = own_doc(fn) or ""
    params = [p for p in inspect.signature(fn).parameters.values() if p.name not in ("self", "cls")]
    if not params:
        return []
    sections = [m.start() for m in _SECTION.finditer(doc)] + [len(doc)]
    start = doc.find("Parameters\n----------")
    if start < 0:
        return [p.name for p in params]
    body = doc[start : min(s for s in sections if s > start)]
    named = set()
    for line in body.splitlines():
        if line and not line[0].isspace() and " : " in line or re.match(r"^\*{0,2}\w+(, \w+)*$", line):
            named.update(n.strip().lstrip("*") for n in line.split(" : ")[0].split(","))
    return [p.name for p in params if p.name not in named]


def public_members(cls: type):
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            yield name, value.fget
        elif isinstance(value, (classmethod, staticmethod)):
            yield name, value.__func__
        elif inspect.isfunction(value):
            yield name, value


def test_every_exported_name_has_a_numpy_docstring():
    problems = []
    for name in labrram.__all__:
        if name == "__version__":
            continue
        obj = getattr(labrram, name)
        if own_doc(obj) is None:
            problems.append(f"{name}: no docstring")
            continue
        if inspect.isfunction(obj):
            missing = undocumented_parameters(obj)
            if missing:
                problems.append(f"{name}: Parameters section does not name {missing}")
        elif isinstance(obj, type) and not issubclass(obj, BaseException):
            for member, fn in public_members(obj):
                if own_doc(fn) is None:
                    problems.append(f"{name}.{member}: no docstring")
    assert not problems, "\n".join(problems)


def test_the_check_finds_what_is_missing():
    def f(a: int, b: float) -> None:
        """Do.

        Parameters
        ----------
        a : int
            A.
        """

    @dataclasses.dataclass
    class D:
        x: int

    assert undocumented_parameters(f) == ["b"]
    assert own_doc(D) is None and own_doc(f).startswith("Do.")


def test_the_reference_lists_every_exported_name():
    """docs/reference/index.md renders each name from the module that defines it."""
    from labrram import _EXPORTS

    text = (ROOT / "docs" / "reference" / "index.md").read_text()
    listed = re.findall(r"^::: ([\w.]+)\.(\w+)$", text, re.M)
    assert sorted(n for _, n in listed) == sorted(_EXPORTS)
    for module, name in listed:
        assert _EXPORTS[name] == module, name
        assert getattr(labrram, name).__module__ == module, name  # defined there, not re-exported


def test_the_package_is_typed():
    assert (ROOT / "labrram" / "py.typed").exists()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["labrram"]
