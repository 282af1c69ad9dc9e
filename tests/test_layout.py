"""The package's layout shows the pipeline: each sub-package is one stage and imports flow one
way, from a stage to the stages before it, never back."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sso_exp"
STAGES = [
    "errors",
    "distributed",
    "config",
    "runtime",
    "data",
    "models",
    "steering",
    "training",
    "evaluation",
    "tracking",
    "pipeline",
    "__main__",
]


def stage(module: str) -> str:
    """The stage of a dotted module name inside sso_exp ('sso_exp.data.records' -> 'data')."""
    return module.split(".")[1]


def imports(path: Path):
    """(line, imported sso_exp module) for every import in a source file."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            name = ".".join([*base, node.module] if node.module else base)
            if name.startswith("sso_exp.") or name == "sso_exp":
                targets = [name] if node.module else [f"{name}.{a.name}" for a in node.names]
                yield from ((node.lineno, t) for t in targets)
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.startswith("sso_exp."))


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def test_every_module_belongs_to_a_stage():
    assert {stage(module(p)) for p in SOURCES} <= set(STAGES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_to_earlier_stages_only(path):
    own = STAGES.index(stage(module(path)))
    for line, target in imports(path):
        assert STAGES.index(stage(target)) <= own, f"{path.name}:{line} imports {target}"
