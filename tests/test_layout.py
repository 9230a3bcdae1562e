"""Rules of the package's layout, checked on its source: modules import each other, never the
package front; no function runs over 80 lines; the modules that need no TensorFlow stay so."""

from __future__ import annotations

import ast
import subprocess

from tests.conftest import PYTHON, ROOT, python_env

PACKAGE = ROOT / "rawtf"
MODULES = {p.stem for p in PACKAGE.glob("*.py")}
MAX_FUNCTION_LINES = 80


def _trees():
    for path in sorted(PACKAGE.glob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def package_front_imports(tree: ast.AST) -> list[str]:
    """``import rawtf`` and ``from rawtf import NAME`` where NAME is not a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}" for a in node.names if a.name == "rawtf"]
        elif isinstance(node, ast.ImportFrom) and node.module == "rawtf" and node.level == 0:
            found += [f"line {node.lineno}: {a.name}" for a in node.names if a.name not in MODULES]
    return found


def function_lengths(tree: ast.AST) -> dict[str, int]:
    """Lines from each function's first statement after its docstring to its last."""
    lengths = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                body = body[1:] or body
            lengths[f"{node.name} (line {node.lineno})"] = body[-1].end_lineno - body[0].lineno + 1
    return lengths


def test_the_checks_catch_what_they_look_for():
    tree = ast.parse("import rawtf\nfrom rawtf import fit, layers\n")
    assert package_front_imports(tree) == ["line 1", "line 2: fit"]
    long = "def f():\n    '''doc'''\n" + "    x = 1\n" * 81
    assert function_lengths(ast.parse(long)) == {"f (line 1)": 81}


def test_no_module_imports_the_package_front():
    offences = {str(p): package_front_imports(t) for p, t in _trees() if p.name != "__init__.py"}
    assert {p: o for p, o in offences.items() if o} == {}


def test_no_function_is_longer_than_80_lines():
    too_long = {
        f"{path.name}: {name}": lines
        for path, tree in _trees()
        for name, lines in function_lengths(tree).items()
        if lines > MAX_FUNCTION_LINES
    }
    assert too_long == {}


def test_modules_without_tensorflow_do_not_import_it():
    """Settings, flags, specs, data files and arrays load (and a summary table is built)
    without TensorFlow: a fresh interpreter is checked."""
    code = (
        "import sys\n"
        "from rawtf import architectures, cli, config, data, flags, images, kaggle, mnist\n"
        "from rawtf import plots, specs\n"
        "cli.build_parser()\n"
        "table = specs.summary_text('m', [specs.Conv('conv1', 5, 32), specs.Flatten(),"
        " specs.Dense('out', 10)], (28, 28, 1))\n"
        "assert 'Total params: 251,722' in table, table\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    proc = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, env=python_env(), timeout=120
    )
    assert proc.returncode == 0, proc.stderr
