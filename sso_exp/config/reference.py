"""docs/config.md, generated from the schema so that it cannot drift from it: every key's
type and default come from the dataclasses, its meaning from the comment written beside (or
above) the field, its options and range from the checks in `__post_init__`.
`python -m sso_exp.config.reference` prints it; `--write` (or a path) writes it."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import re
import sys
import textwrap
import tokenize
import typing
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from omegaconf import MISSING

from .evaluation import JUDGES
from .schema import SSOConfig

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "config.md"
CONF = ROOT / "conf"
COMMAND = "python -m sso_exp.config.reference --write"
OPTIONS = {"eval.judge": JUDGES}  # keys whose options are dataclasses in the ConfigStore
PRESETS = ("experiment", "hparams_search")  # conf/ groups that set other groups' keys
PRAGMAS = ("type:", "noqa", "pragma")


def source(obj: Any) -> str:
    return textwrap.dedent(inspect.getsource(obj))


def comments(cls: type) -> Dict[str, str]:
    """Field -> its meaning: the comment trailing its line, else the comment lines directly
    above it (tool pragmas such as `# type: ignore` are not meanings)."""
    text = source(cls)
    lines = text.splitlines()
    notes = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        note = tok.string.lstrip("#").strip()
        if tok.type == tokenize.COMMENT and not note.startswith(PRAGMAS):
            notes[tok.start[0]] = note
    found = {}
    for node in ast.parse(text).body[0].body:
        if not isinstance(node, ast.AnnAssign):
            continue
        above, row = [], node.lineno - 1
        while row in notes and lines[row - 1].lstrip().startswith("#"):
            above.insert(0, notes[row])
            row -= 1
        trailing = notes.get(node.lineno) or notes.get(node.end_lineno)
        found[node.target.id] = trailing or " ".join(above)
    return found


def inherited_comments(cls: type) -> Dict[str, str]:
    """`comments` of the class and its dataclass bases: a field a subclass redefines keeps
    its base's meaning unless the subclass gives it another."""
    found: Dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if dataclasses.is_dataclass(base):
            found.update({k: v for k, v in comments(base).items() if v or k not in found})
    return found


def evaluate(node: ast.AST, env: Dict[str, Any], module: Dict[str, Any]) -> Any:
    """The expression's value from the module's constants and loop values (NameError for
    anything that needs an instance)."""
    code = compile(ast.Expression(node), "<check>", "eval")
    return eval(code, dict(module), dict(env))  # the package's own source


def render(node: ast.AST, env: Dict, module: Dict, unknown: Optional[Dict] = None) -> str:
    """A key or message string. An f-string part that needs the instance becomes `*` in a
    key; in a message its source, a local read as the field it is built from (`unknown`)."""
    if not isinstance(node, ast.JoinedStr):
        return str(evaluate(node, env, module))
    parts = []
    for part in node.values:
        if isinstance(part, ast.Constant):
            parts.append(str(part.value))
            continue
        try:
            parts.append(str(evaluate(part.value, env, module)))
        except Exception:
            parts.append("*" if unknown is None else described(part.value, unknown))
    return "".join(parts)


def described(node: ast.AST, local: Dict[str, ast.AST]) -> str:
    """An expression's source without `self.`; a local built from a field (`names = [f.name
    for f in self.features]`) is named by that field."""
    text = ast.unparse(node)
    for name, value in local.items():
        built = [ast.unparse(n) for n in ast.walk(value) if isinstance(n, ast.Attribute)]
        built = [b for b in built if b.startswith("self.")]
        text = re.sub(rf"\b{name}\b", built[0], text) if built else text
    return text.replace("self.", "")


def options(call: ast.Call, local: Dict[str, ast.AST], env: Dict, module: Dict) -> List:
    """The choices a check allows: require_choice's, or a membership test of the condition
    (or of a local it reads) against a constant."""
    if call.func.id == "require_choice":
        return list(evaluate(call.args[1], env, module))
    nodes = [call.args[0]] + [
        local[n.id] for n in ast.walk(call.args[0]) if isinstance(n, ast.Name) and n.id in local
    ]
    for node in (n for root in nodes for n in ast.walk(root)):
        if isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            try:
                return list(evaluate(node.comparators[0], env, module))
            except Exception:
                continue
    return []


@functools.cache  # parsed once per dataclass
def checks(cls: type) -> List[Tuple[List[str], str]]:
    """(key parts, allowed) for each `require`/`require_choice` of `__post_init__`: its
    options, or its "must ..." message (checks of one key against another are the comments'
    to explain). A key with a part known only at run time ends in its parent, `each value`."""
    if "__post_init__" not in vars(cls):
        return []
    module = vars(sys.modules[cls.__module__])
    found: List[Tuple[List[str], str]] = []

    def visit(body: Sequence[ast.stmt], env: Dict[str, Any], local: Dict[str, ast.AST]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                local[stmt.targets[0].id] = stmt.value
            elif isinstance(stmt, ast.For):
                try:  # a loop over constant keys: once per key
                    envs = [{**env, stmt.target.id: v} for v in evaluate(stmt.iter, env, module)]
                except Exception:  # over the instance's data: its keys end in "*"
                    envs = [env]
                for inner in envs:
                    visit(stmt.body, inner, local)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                record(stmt.value, env, local)

    def record(call: ast.Call, env: Dict[str, Any], local: Dict[str, ast.AST]) -> None:
        name = getattr(call.func, "id", "")
        if name not in ("require", "require_choice"):
            return
        key_arg, msg = (call.args[2], None) if name == "require_choice" else call.args[1:3]
        choices = options(call, local, env, module)
        text = ", ".join(f"`{fmt(c)}`" for c in choices)
        if not choices:
            text = render(msg, env, module, local)
            if not text.startswith("must "):
                return
            text = re.sub(r"^must (be )?", "", text)
        for key in render(key_arg, env, module).split("/"):
            parts = key.split(".")
            if parts[-1] == "*":
                parts, text = parts[:-1], f"each value {text}"
            found.append((parts, text))

    visit(ast.parse(source(vars(cls)["__post_init__"])).body[0].body, {}, {})
    return found


def shown(value: Any) -> str:
    """A default in the doc: code, or *required* for MISSING (the option chosen sets it)."""
    return "*required*" if value == MISSING else f"`{fmt(value)}`"


def fmt(value: Any) -> str:
    """A value as an override writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) + "}"
    return str(value) if value != "" else '""'


def default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def nested(cls: type, name: str) -> Optional[type]:
    """The dataclass a field holds (itself, optional, or a list of them), if any."""
    stack = [typing.get_type_hints(cls)[name]]
    while stack:
        hint = stack.pop()
        if dataclasses.is_dataclass(hint):
            return hint
        stack.extend(typing.get_args(hint))
    return None


def reachable(cls: type = SSOConfig) -> Iterator[type]:
    """Every dataclass of the config, each once: SSOConfig's tree and the judges."""
    seen: List[type] = []
    todo = [cls, *JUDGES.values()]
    while todo:
        current = todo.pop(0)
        if current in seen:
            continue
        seen.append(current)
        todo.extend(c for f in dataclasses.fields(current) if (c := nested(current, f.name)))
    yield from seen


def option_files(group: str) -> List[str]:
    """The options of conf/<group>/, each with the first sentence of its leading comment."""
    rows = []
    for path in sorted((CONF / group).glob("*.yaml")):
        note = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            if not line.startswith("# @package"):
                note.append(line.lstrip("#").strip())
        first = re.split(r"(?<=\.)\s+(?=[A-Z])", " ".join(note))[0]
        rows.append(f"- `{group}={path.stem}`" + (f": {first}" if first else ""))
    return [f"Options in `conf/{group}/`:", "", *rows, ""] if rows else []


Chain = List[Tuple[type, List[str]]]  # each dataclass above a key, and the key's path in it
Sub = Tuple[str, str, type, str, Chain]  # heading, first line, dataclass, key, chain


def allowed(chain: Chain) -> str:
    """What the checks of the key's dataclass and of those above it allow."""
    found = [text for cls, rel in chain for parts, text in checks(cls) if parts[-len(rel) :] == rel]
    return "; ".join(found)


def table(rows: List[List[str]]) -> List[str]:
    head = ["| Key | Type | Default | Allowed | Meaning |", "|---|---|---|---|---|"]
    body = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return head + body + [""] if rows else []


class Writer:
    """Walks the dataclasses depth first: a heading per key that holds a dataclass (or takes
    one as an option), a table row per other key; a dataclass met before is referred to."""

    def __init__(self) -> None:
        self.lines: List[str] = []
        self.done: Dict[type, str] = {}

    def section(self, cls: type, key: str, chain: Chain, level: int) -> None:
        repeated = cls in self.done
        if repeated:
            self.lines += [f"Same keys as `{self.done[cls]}` ({cls.__name__}).", ""]
        elif cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):  # not generated
            self.lines += [" ".join(inspect.cleandoc(cls.__doc__).split()), ""]
        self.lines += option_files(key.replace(".", "/")) if key else []
        if repeated:
            return
        self.done[cls] = key
        rows, subs = self.fields(cls, key, chain)
        self.lines += table(rows) if key else []
        for heading, first, sub, path, links in subs:
            self.lines += [f"{'#' * level} {heading}", "", first, ""]
            self.section(sub, path, links, level + 1)
        self.lines += ["## Top-level keys", "", *table(rows)] if not key and rows else []

    @staticmethod
    def fields(cls: type, key: str, chain: Chain) -> Tuple[List[List[str]], List[Sub]]:
        """The table rows of the plain keys, and the sections of the dataclass keys."""
        meanings, hints = inherited_comments(cls), typing.get_type_hints(cls)
        rows: List[List[str]] = []
        subs: List[Sub] = []
        for f in dataclasses.fields(cls):
            path, value = f"{key}.{f.name}" if key else f.name, default(f)
            links = [(c, rel + [f.name]) for c, rel in chain + [(cls, [])]]
            sub = nested(cls, f.name)
            if sub is None:
                cells = [f"`{path}`", f"`{f.type}`", shown(value), allowed(links)]
                rows.append(cells + [meanings[f.name]])
                for name, option in OPTIONS.get(path, {}).items():
                    first = f"`{path.replace('.', '/')}={name}` sets `{path}` to {option.__name__}:"
                    subs.append((f"{path}={name}", first, option, path, []))
                continue
            path += "[]" if typing.get_origin(hints[f.name]) is list else ""
            known = "" if dataclasses.is_dataclass(value) else f", default {shown(value)}"
            subs.append((path, f"`{f.type}`{known}: {meanings[f.name]}", sub, path, links))
        return rows, subs


def markdown() -> str:
    """The whole reference, as docs/config.md holds it."""
    writer = Writer()
    writer.lines += [
        "# Configuration reference",
        "",
        f"<!-- Generated by `{COMMAND}` from sso_exp/config/: do not edit by hand. -->",
        "",
        f"Generated from the typed schema in `sso_exp/config/` by `{COMMAND}`; do not edit it "
        "by hand (a test fails when it is out of date). A key's meaning is the comment beside "
        "its field, its allowed values the field's checks. Set a key with `key=value`, choose "
        "an option with `group=option`; `python -m sso_exp --cfg job [overrides]` prints the "
        "composed config. *required*: no default in the schema, the option chosen (or an "
        "override) sets it; `${...}` values are interpolations, resolved when the run starts.",
        "",
    ]
    writer.section(SSOConfig, "", [], 2)
    writer.lines += ["## Presets", "", "Options that set keys of several groups at once.", ""]
    for group in PRESETS:
        writer.lines += option_files(group)
    return "\n".join(writer.lines).rstrip() + "\n"


def main(argv: Sequence[str]) -> None:
    """No argument: print the reference; `--write`: write docs/config.md; a path: write it."""
    text = markdown()
    if not argv:
        sys.stdout.write(text)
        return
    target = DOC if argv[0] == "--write" else Path(argv[0])
    target.write_text(text)
    print(f"wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
