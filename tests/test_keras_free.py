"""No module under rawtf/ may use Keras: a static scan of the code (not of docstrings)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rawtf"


def keras_uses(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if "keras" in a.name.split(".")]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if "keras" in module.split(".") or any(a.name == "keras" for a in node.names):
                found.append(f"from {module}")
        elif isinstance(node, ast.Attribute) and node.attr == "keras":
            found.append(f"line {node.lineno}: .keras")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            pass  # words in docstrings and messages are fine
    return found


def test_scanner_catches_every_form():
    sample = (
        "import keras\nfrom tensorflow import keras\nimport tensorflow as tf\ntf.keras.layers\n"
    )
    assert len(keras_uses(sample, "sample")) == 3
    assert keras_uses('"""Like keras.layers.Dense."""\n', "doc") == []


def test_rawtf_uses_no_keras():
    files = sorted(PACKAGE.rglob("*.py"))
    assert files, "package not found"
    offences = {str(p): keras_uses(p.read_text(), str(p)) for p in files}
    assert {p: o for p, o in offences.items() if o} == {}
