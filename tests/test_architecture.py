"""The house keeps its shape: an import scan (AST) of diag/ against the rules of
docs/architecture.md, shown to fail on planted violations.

Rules:
1. A stage (collect, parse, decode, facts, analyze, report, lab) imports no other stage; the one
   exception is facts, which assembles parse's and decode's outputs. Floors (model, errors,
   bundle, values, k8s, lake, words) import no stage; model, values and words nothing of diag.
2. The command line (diag/cli/) calls the pipeline and renders with report; it imports no other
   stage but the lab (``diag lab`` drives the lab): ordering stages is the pipeline's job.
3. Only diag/bundle.py spells bundle paths: no other module holds a string with ``hosts/`` or
   the names ``manifest.json``/``redactions.json`` (docstrings and comments aside).
4. Only diag/pipeline.py imports several stages to put them in order.
"""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("collect", "parse", "decode", "facts", "analyze", "report", "lab")
FLOORS = ("model", "errors", "bundle", "values", "k8s", "lake", "words", "interrupts")
ALLOWED = {"facts": {"parse", "decode"}, "cli": {"report", "lab"}}
BARE_FLOORS = ("model", "values", "words", "interrupts")    # import nothing from diag
BUNDLE_NAMES = ("manifest.json", "redactions.json")


def _place(path: Path, package: Path) -> str:
    """The top-level part of diag a module belongs to: a stage, a floor, cli, pipeline..."""
    rel = path.relative_to(package)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every diag import anywhere in the module (lazy ones included)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("diag")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "diag":
                out += [(node.lineno, f"diag.{a.name}") for a in node.names]
            elif node.module.startswith("diag."):
                out.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", "")) == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant)
              and str(node.args[0].value).startswith("diag.")):
            out.append((node.lineno, str(node.args[0].value)))
    return out


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _path_literals(tree: ast.AST) -> list[tuple[int, str]]:
    docs = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            text = node.value
            if "hosts/" in text or text in BUNDLE_NAMES:
                out.append((node.lineno, text))
    return out


def scan(package: Path) -> list[str]:
    """Every violation of the rules in the module docstring, one line each."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        place = _place(path, package)
        rel = path.relative_to(package.parent)
        tree = ast.parse(path.read_text(), str(path))
        stages_used = set()
        for line, module in _imported(tree):
            parts = module.split(".")
            target = parts[1] if len(parts) > 1 else "diag"
            if target == place or target == "diag" or target.startswith("__"):
                continue
            if place in BARE_FLOORS:
                problems.append(f"{rel}:{line}: floor {place} imports {module}")
            elif place in FLOORS and target not in FLOORS:
                problems.append(f"{rel}:{line}: floor {place} imports {module}")
            elif target in STAGES and place != "pipeline":
                stages_used.add(target)
                if place in STAGES + ("cli",) and target not in ALLOWED.get(place, ()):
                    problems.append(f"{rel}:{line}: {place} imports the stage {module}")
            elif target in ("cli", "pipeline") and place not in ("cli", "__main__"):
                problems.append(f"{rel}:{line}: {place} imports {module}")
        if place not in ("pipeline", "cli", "facts") and len(stages_used) > 1:
            problems.append(f"{rel}: orders stages ({', '.join(sorted(stages_used))}): "
                            "only diag/pipeline.py does")
        if place != "bundle":
            problems += [f"{rel}:{line}: a bundle path outside diag/bundle.py: {text!r}"
                         for line, text in _path_literals(tree)]
    return problems


def test_the_house_keeps_its_rules():
    assert scan(ROOT / "diag") == []


PLANTED = {
    "report/html.py": ("from diag.analyze import explain\n", "report imports the stage"),
    "analyze/arp.py": ("PATH = f'hosts/{1}/ip-neigh.out'\n", "a bundle path outside"),
    "model.py": ("from diag.errors import DiagError\n", "floor model imports"),
    "cli/facts.py": ("from diag.facts import load_facts\n", "cli imports the stage"),
    "lab/status.py": ("import diag.collect.runner\nimport diag.decode\n", "orders stages"),
    "decode/arp.py": ("import diag.parse.common\n", "decode imports the stage"),
    "collect/ssh.py": ("X = 'manifest.json'\n", "a bundle path outside"),
    "lake.py": ("from diag.facts.export import lake_tables\n", "floor lake imports"),
}


@pytest.mark.parametrize("module", sorted(PLANTED))
def test_the_scan_fails_on_a_planted_violation(tmp_path, module):
    copy = tmp_path / "diag"
    shutil.copytree(ROOT / "diag", copy, ignore=shutil.ignore_patterns("__pycache__"))
    line, expected = PLANTED[module]
    target = copy / module
    target.write_text(target.read_text() + "\n" + line)
    problems = scan(copy)
    assert any(expected in p and module in p for p in problems), problems
