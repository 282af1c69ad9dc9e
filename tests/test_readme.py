"""The README's commands run as written, so the guide cannot drift from the code.

Every `python -m sso_exp ...` line of README.md's fenced code blocks (also `.venv/bin/python
-m sso_exp`, `make run ARGS="..."` and `torchrun ... -m sso_exp ...`) is composed and
validated in-process with `sso_exp.config.compose`, as the CLI does before any work; a sweep
(`-m`, or `hparams_search=optuna`) composes each of its jobs, and its Hydra-level overrides
(`hydra/launcher=...`, `hydra.launcher.*`, `hydra.sweeper.*`) are composed into Hydra's own
config with the launcher and sweeper built from it, and run through the real CLI with
`--cfg`. Composing loads no weights, so commands for models that are not on this machine
(qwen2, llama3) and for GPUs compose on any CPU; a GPU trainer is refused later, at start-up
(`check_trainer`), which is checked too. The modules, scripts, make targets, links and
package files the README names exist, and the README stays a guide: at most 250 lines, no
commit hashes."""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest
import torch
from hydra import initialize_config_dir
from hydra._internal.callbacks import Callbacks
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, RunMode

from sso_exp.config import SSOConfig, compose
from sso_exp.config.compose import CONF
from sso_exp.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 250
# shell variables the README's commands use for what the reader fills in
PLACEHOLDERS = {
    "RUN": "outputs/runs/2026-01-01_00-00-00_a1b2c3",
    "SWEEP_ID": "2026-01-01_00-00-00_a1b2c3-d4e5f6",
    "NODE_RANK": "0",
    "HEAD_NODE": "head-node",
}
# a command line: optional VAR=value assignments, then one of these programs
PROGRAM = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:python3?|\.venv/bin/python|make|torchrun)\s")
# Hydra-level overrides: in-process `compose` does not launch or sweep, so commands holding
# them are also run through the CLI (`--cfg`)
HYDRA_LEVEL = re.compile(r"^(?:hydra[./]|hparams_search=)")


@dataclass(frozen=True)
class Command:
    """One command line of the README: where it is, and what it runs."""

    line: int
    text: str
    program: str  # "sso_exp", "module", "script", "code" or "make"
    target: str  # the module, the script, the code or the make target
    args: Tuple[str, ...]  # after the module or script: overrides, flags

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.text}"


def fenced_blocks(path: Path) -> List[List[Tuple[int, str]]]:
    """The fenced code blocks: each a list of (line number, logical line), with `\\`
    continuations joined onto the line they continue."""
    blocks: List[List[Tuple[int, str]]] = []
    inside, pending, start = False, "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            inside, pending = not inside, ""
            if inside:
                blocks.append([])
            continue
        if not inside:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        blocks[-1].append((start, pending + line))
        pending = ""
    return blocks


def fenced_lines(path: Path) -> Iterator[Tuple[int, str]]:
    for block in fenced_blocks(path):
        yield from block


VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def substitute(token: str) -> str:
    """`$NAME` / `${NAME}` replaced by the value the README's reader would fill in (left as
    it is when PLACEHOLDERS has none: test_readme_variables_have_placeholders says so)."""
    return VARIABLE.sub(lambda m: PLACEHOLDERS.get(m.group(1) or m.group(2), m.group(0)), token)


def parse(line: int, text: str) -> Optional[Command]:
    """The command a code line runs, or None for lines that run no command of ours."""
    if not PROGRAM.match(text.strip() + " "):
        return None
    tokens = [substitute(t) for t in shlex.split(text, comments=True)]
    while re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):  # environment assignments
        tokens.pop(0)
    program, rest = tokens[0], tokens[1:]
    if not rest:  # a bare program name in prose
        return None
    text = text.split(" #")[0].strip()
    if program == "make":
        assigns = dict(t.split("=", 1) for t in rest[1:] if "=" in t)
        if rest[0] == "run":  # `make run ARGS="..."` is `python -m sso_exp ...`
            args = tuple(shlex.split(assigns.get("ARGS", "")))
            return Command(line, text, "sso_exp", "run", args)
        return Command(line, text, "make", rest[0], ())
    if program == "torchrun":  # torchrun's own options, then `-m <module>`
        rest = rest[rest.index("-m") :]
    if rest[0] == "-c":  # a Python one-liner
        return Command(line, text, "code", rest[1], ())
    if rest[0] == "-m":
        module, args = rest[1], tuple(rest[2:])
        return Command(line, text, "sso_exp" if module == "sso_exp" else "module", module, args)
    return Command(line, text, "script", rest[0], tuple(rest[1:]))


def readme_commands() -> List[Command]:
    found = (parse(line, text) for line, text in fenced_lines(README))
    return [c for c in found if c is not None]


COMMANDS = readme_commands()
SSO_EXP = [c for c in COMMANDS if c.program == "sso_exp"]


def command_id(command: Command) -> str:
    return f"L{command.line}:{' '.join(command.args)[:80] or '(defaults)'}"


# --- composing a command the way the CLI does -------------------------------------------


def split_flags(command: Command) -> Tuple[bool, Optional[str], List[str]]:
    """(multirun, the --cfg part or None, the overrides); a flag this test does not know
    raises, naming the command."""
    multirun, cfg, overrides = False, None, []
    args = iter(command.args)
    for arg in args:
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg in ("--cfg", "-c"):
            cfg = next(args, None)
        elif arg.startswith("-"):
            raise ValueError(f"flag {arg}: tests/test_readme.py does not know how to check it")
        else:
            overrides.append(arg)
    return multirun, cfg, overrides


def _parsed(override: str) -> Override:
    return OverridesParser.create().parse_overrides([override])[0]


def sweeper_jobs(overrides: List[str]) -> List[List[str]]:
    """Load the sweep's config in MULTIRUN mode (Hydra-level overrides checked against the
    launcher's and sweeper's own configs), build its sweeper and launcher as Hydra would,
    and return the jobs to compose: every combination of the discrete sweeps and, for an
    Optuna search space, its bounds (all low, all high)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        cfg = loader.load_configuration("config", overrides, run_mode=RunMode.MULTIRUN)
        context = HydraContext(config_loader=loader, callbacks=Callbacks())
        Plugins.instance().instantiate_sweeper(
            config=cfg, hydra_context=context, task_function=lambda _: None
        )
        params = dict(cfg.hydra.sweeper.get("params") or {})
        optuna = "optuna" in cfg.hydra.sweeper._target_.lower()
    parsed = OverridesParser.create().parse_overrides(overrides)
    if any(o.is_sweep_override() and not o.is_discrete_sweep() for o in parsed) and not optuna:
        raise AssertionError("an interval or range sweep needs hparams_search=optuna")
    fixed = [o for o in parsed if not (o.is_sweep_override() and not o.is_discrete_sweep())]
    jobs = [job for batch in BasicSweeper.split_arguments(fixed, None) for job in batch]
    if not params:
        return jobs
    if not optuna:  # the basic sweeper's params are more sweeps
        extra = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
        return [job for batch in BasicSweeper.split_arguments(fixed + extra, None) for job in batch]
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override

    ends: Dict[str, Tuple[str, str]] = {}
    for key, value in params.items():
        dist = create_optuna_distribution_from_override(_parsed(f"{key}={value}"))
        if hasattr(dist, "choices"):
            low, high = dist.choices[0], dist.choices[-1]
        else:
            low, high = dist.low, dist.high
        ends[key] = (f"{key}={low}", f"{key}={high}")
    return [job + [end[i] for end in ends.values()] for job in jobs for i in (0, 1)]


@functools.cache
def composed(command: Command) -> List[SSOConfig]:
    """Every config the command would run with, validated; raises what the CLI would
    (once per command: composing takes a fifth of a second)."""
    multirun, _, overrides = split_flags(command)
    if not multirun:
        config = compose(*overrides)
        if HydraConfig.get().mode != RunMode.MULTIRUN:  # hparams_search=optuna sweeps
            return [config]
    return [compose(*job) for job in sweeper_jobs(overrides)]


def cli_check(command: Command) -> Optional[List[str]]:
    """The real CLI command that checks what in-process composing cannot: `--cfg` as
    written, or a sweep's first job with its Hydra-level overrides under `--cfg hydra`."""
    try:
        _, cfg, overrides = split_flags(command)
    except ValueError:  # test_readme_command_composes names it
        return None
    if cfg is not None:
        return list(command.args)
    if not any(HYDRA_LEVEL.match(o) for o in overrides):
        return None
    first = []
    for override in overrides:
        parsed = _parsed(override)
        if parsed.is_discrete_sweep():  # its first value
            first.append(f"{parsed.get_key_element()}={next(parsed.sweep_string_iterator())}")
        else:
            first.append(override)
    return [*first, "--cfg", "hydra"]


@pytest.fixture
def no_weights(monkeypatch):
    """Composing must not load a model: every way to load one fails here."""
    import transformers

    import sso_exp.models.loading as loading

    def refuse(*args, **kwargs):
        raise AssertionError("composing a config loaded model weights")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loading, "load_policy", refuse)
    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", refuse)


def test_the_readme_has_commands_of_each_kind():
    kinds = {c.program for c in COMMANDS}
    assert {"sso_exp", "module"} <= kinds, kinds
    assert any("-m" in c.args for c in SSO_EXP), "no sweep (-m) among the README's commands"


def test_readme_variables_have_placeholders():
    unknown = {(c.line, m.group(0)) for c in COMMANDS for a in c.args for m in VARIABLE.finditer(a)}
    assert not unknown, f"README commands use variables PLACEHOLDERS lacks: {sorted(unknown)}"


@pytest.mark.parametrize("command", SSO_EXP, ids=command_id)
def test_readme_command_composes(command, no_weights):
    try:
        configs = composed(command)
    except Exception as err:  # noqa: BLE001 - the message must name the command
        pytest.fail(f"{command}\ndoes not compose: {type(err).__name__}: {err}", pytrace=False)
    assert configs, f"{command}: no job to compose"
    for config in configs:
        if re.search(r"\bmodel=(qwen2|llama3)\b", command.text):  # weights off this machine
            assert config.model.source == "pretrained", command


@pytest.mark.parametrize(
    "command", [c for c in SSO_EXP if cli_check(c)], ids=lambda c: command_id(c)
)
def test_readme_command_passes_the_cli(command):
    """Flags and Hydra-level overrides through `python -m sso_exp` itself (`--cfg`: Hydra
    composes, nothing runs)."""
    argv = cli_check(command)
    proc = subprocess.run(
        [sys.executable, "-m", "sso_exp", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"{command}\n`{' '.join(argv)}` failed:\n{proc.stderr[-2000:]}"
    assert proc.stdout.strip(), f"{command}: printed no config"


def test_gpu_commands_compose_here_and_are_refused_at_start_up(no_weights):
    """A GPU trainer composes on any machine; without a GPU, start-up refuses it naming
    `trainer.accelerator` (the README says so)."""
    from sso_exp.training.fit import check_trainer

    gpu = [c for c in SSO_EXP if re.search(r"trainer(\.accelerator)?=gpu|paper_online", c.text)]
    assert gpu, "the README shows no GPU command"
    for command in gpu:
        for config in composed(command):
            assert config.trainer.accelerator in ("gpu", "cuda"), command
            if torch.cuda.is_available():
                continue
            with pytest.raises(ConfigError, match=r"trainer\.accelerator"):
                check_trainer(config.trainer)


# --- what the README names exists ---------------------------------------------------------


def named_modules() -> List[str]:
    text = README.read_text(encoding="utf-8")
    inline = re.findall(r"python -m (sso_exp(?:\.\w+)+)", text)
    return sorted(set(inline) | {c.target for c in COMMANDS if c.program == "module"})


PAGES = [README] + [ROOT / "docs" / n for n in ("measurements.md", "study.md", "reliability.md")]


def named_scripts() -> List[str]:
    """Every `scripts/...` file the README and the measurement pages name."""
    found = set()
    for page in PAGES:
        found.update(
            re.findall(r"\bscripts/[\w.-]+\.(?:py|sh)\b", page.read_text(encoding="utf-8"))
        )
    return sorted(found)


def page_commands(program: str) -> List[Command]:
    """The command lines of those pages that run `program`, in code blocks or inline code."""
    found: Dict[str, Command] = {}
    for page in PAGES:
        spans = re.findall(r"`([^`\n]+)`", page.read_text(encoding="utf-8"))
        for text in [text for _, text in fenced_lines(page)] + spans:
            command = parse(0, text)
            if command is not None and command.program == program:
                found.setdefault(command.text, command)
    return list(found.values())


@pytest.mark.parametrize("module", named_modules())
def test_named_module_exists(module):
    import importlib.util

    assert importlib.util.find_spec(module) is not None, f"README names `python -m {module}`"


@pytest.mark.parametrize("script", named_scripts())
def test_named_script_exists(script):
    assert (ROOT / script).is_file(), f"{script} is named in the docs but does not exist"


@pytest.mark.parametrize("command", page_commands("script"), ids=lambda c: c.text[:90])
def test_script_command_fits_its_script(command, no_weights):
    """A measurement's command: the script's options and sub-command exist, and the Hydra
    overrides it passes compose."""
    path = ROOT / command.target
    assert path.is_file(), f"`{command.text}`: no {command.target}"
    source = path.read_text(encoding="utf-8")
    flags = [a for a in command.args if a.startswith("--")]
    missing = [f for f in flags if f'"{f}"' not in source]
    assert not missing, f"`{command.text}`: {command.target} has no option {missing}"
    if command.args and re.fullmatch(r"[a-z]\w*", command.args[0]):  # a sub-command
        assert f'"{command.args[0]}"' in source, f"`{command.text}`: no {command.args[0]!r}"
    overrides = [a for a in command.args if "=" in a and not a.startswith("-")]
    if overrides:
        try:
            compose(*overrides)
        except Exception as err:  # noqa: BLE001 - the message must name the command
            pytest.fail(f"`{command.text}`: {type(err).__name__}: {err}", pytrace=False)


@pytest.mark.parametrize("command", page_commands("code"), ids=lambda c: c.target[:90])
def test_python_one_liner_runs(command, capsys):
    exec(compile(command.target, command.text, "exec"), {})
    assert capsys.readouterr().out.strip(), f"`{command.text}` printed nothing"


def test_reliability_names_existing_tests():
    text = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    named = set(re.findall(r"\btests/[\w/.-]+", text))
    assert named, "docs/reliability.md names no test"
    missing = sorted(n for n in named if not (ROOT / n.rstrip(".")).exists())
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"


def test_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", makefile, re.MULTILINE))
    named = {c.target for c in COMMANDS if c.program == "make"} | {"run"}
    assert named <= targets, f"README runs make targets the Makefile lacks: {named - targets}"


def test_links_resolve():
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


def layout_entries() -> List[Tuple[str, str]]:
    """(folder or file, its description) of the README's layout block (`sso_exp/` first):
    entries under `sso_exp/` are indented 2 spaces, descriptions go on indented deeper."""
    block = next((b for b in fenced_blocks(README) if b and b[0][1].strip() == "sso_exp/"), [])
    entries: List[Tuple[str, str]] = []
    for _, text in block[1:]:
        if not text.strip():
            continue
        if text.startswith("   ") and entries:
            entries[-1] = (entries[-1][0], f"{entries[-1][1]} {text.strip()}")
            continue
        name, _, description = text.strip().partition(" ")
        entries.append(("sso_exp/" + name if text.startswith("  ") else name, description))
    return entries


def test_layout_names_what_exists():
    entries = layout_entries()
    assert entries, "README has no layout block starting `sso_exp/`"
    missing = []
    for entry, description in entries:
        path = ROOT / entry
        if not path.exists():
            missing.append(entry)
            continue
        if path.is_dir():
            names = re.findall(r"(?<![\w/.])(\w+\.(?:py|sh))\b", description)
            folders = re.findall(r"(?<![\w/.])(\w+)/(?=[\s,)]|$)", description)
            missing += [f"{entry}{n}" for n in names + folders if not (path / n).exists()]
    assert not missing, f"README's layout names what does not exist: {missing}"
    listed = {e for e, _ in entries}
    packages = {
        f"sso_exp/{p.parent.name}/"
        for p in (ROOT / "sso_exp").glob("*/__init__.py")
        if p.parent.name != "__pycache__"
    }
    assert packages <= listed, f"README's layout leaves out {sorted(packages - listed)}"


def test_readme_is_at_most_250_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines (at most {MAX_LINES})"


def test_readme_names_no_commit():
    """Hashes of 7 to 40 hex digits (with a digit and a letter, so words and numbers pass):
    commits belong beside their figures, in docs/measurements.md."""
    lines = README.read_text(encoding="utf-8").splitlines()
    hashes = [
        (number, h)
        for number, line in enumerate(lines, 1)
        for h in re.findall(r"(?<![\w.])[0-9a-f]{7,40}(?![\w.])", line)
        if re.search(r"[a-f]", h) and re.search(r"\d", h)
    ]
    assert not hashes, f"README.md names commits (docs/measurements.md keeps them): {hashes}"


def test_every_product_of_a_sweep_is_composed():
    """The sweep expansion itself: a 2 x 2 sweep is four jobs."""
    jobs = {
        tuple(o.lower() for o in job)
        for job in sweeper_jobs(["loss=ipo,dpo", "loss.use_g=true,false"])
    }
    assert jobs == {
        (f"loss={a}", f"loss.use_g={b}") for a, b in product(("ipo", "dpo"), ("true", "false"))
    }
