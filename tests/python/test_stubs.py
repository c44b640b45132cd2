"""The type stubs (python/diffeoflow.pyi) beside the module name what it defines with the same
parameters, and help() documents everything."""
import ast
import os
import pydoc
import re

import diffeoflow

STUB = os.path.join(os.path.dirname(diffeoflow.__file__), "diffeoflow.pyi")


def stub_tree():
    with open(STUB) as f:
        return ast.parse(f.read())


def stub_parameters(node):
    names = [a.arg for a in node.args.args + node.args.kwonlyargs]
    return [n for n in names if n != "self"]


def module_parameters(routine):
    """Parameter names from the signature line pybind11 writes first in a docstring."""
    line = routine.__doc__.splitlines()[0]
    inside = re.match(r"\w+\((.*)\)( ->.*)?$", line).group(1)
    names = [part.split(":")[0].split("=")[0].strip() for part in inside.split(", ")]
    return [n for n in names if n and not n.startswith("*") and n != "self"]


def public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


def test_stubs_sit_beside_the_module():
    assert os.path.isfile(STUB), STUB


def test_stubs_name_what_the_module_defines():
    tree = stub_tree()
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    assert public(diffeoflow) == set(functions) | set(classes)
    for name, node in functions.items():
        assert stub_parameters(node) == module_parameters(getattr(diffeoflow, name)), name
    for name, node in classes.items():
        cls = getattr(diffeoflow, name)
        members = {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}
        assert public(cls) == set(members) - {"__init__"}, name
        for member, definition in members.items():
            is_property = any(getattr(d, "id", None) == "property"
                              for d in definition.decorator_list)
            if member == "__init__" or is_property:
                continue
            assert stub_parameters(definition) == module_parameters(getattr(cls, member)), \
                f"{name}.{member}"


def test_help_documents_everything():
    text = pydoc.render_doc(diffeoflow, renderer=pydoc.plaintext)
    for name in public(diffeoflow):
        assert name in text
        doc = getattr(diffeoflow, name).__doc__
        # More than the signature line pybind11 generates.
        assert doc and len(doc.strip().splitlines()) > 1 or isinstance(
            getattr(diffeoflow, name), type) and doc, name
    assert "integrate(dynamics" in text and "register(fixed" in text
