"""The documentation names only what exists: files, Python names, ``k3dn`` commands and their options, rules.

What is read: the code of every Markdown page below (inline code spans, fenced blocks) and its link targets.

* A path whose first part is a top-level entry of the repository (``k3dn/infer.py``, ``tests/test_x.py``,
  ``config/paper/*.csv``) must exist; ``<placeholder>`` and ``*`` are globs that must match at least one file.
  Paths under the workflow's output folders (``OUTPUT_ROOTS``) are not checked: a checkout does not have them.
* A bare file name of a source kind (``bambnet.py``, ``table1_dpdd.csv``) must exist beside the page or be the
  name of a file in the repository, unless ``NOT_IN_REPO`` lists it with its reason.
* ``k3dn.x.y`` and ``baselines.x.y`` must import (module, then attributes), and so must the names listed in
  parentheses after one: "`k3dn.io` (`read_image`, `write_png16`)".
* ``k3dn <command> [<subcommand>]`` must be a command of the CLI's parser (``k3dn.cli.build_parser``); every
  ``--option`` after it an option of that command, and a value given to an option with choices one of them
  (``--dtype float32|bfloat16``). A span that starts with a command group (``report speed --compile``) counts too.
* ``python scripts/x.py ... --opt``: the script must define the option.
* "(rule `x`)" must name a rule of the Snakefile or ``workflow/rules/*.smk``.

The path, Python-name and command checks each have a test that feeds them a wrong name; the others assert
that they found something to check.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import os
import re
from pathlib import Path

import pytest

from k3dn.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    "README.md",
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")),
    "config/paper/README.md",
    "results/README.md",
    "scripts/golden/README.md",
]
# What the workflow and the commands write, in a checkout that has never run them: only their shape is documented.
OUTPUT_ROOTS = ("results/", "resources/")
SOURCE_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".csv", ".json", ".npz", ".sh", ".smk", ".toml"}
# Bare file names the pages mention that are, rightly, in no folder of this repository.
NOT_IN_REPO = {
    # written by the workflow or a command (the folders are in results/README.md and docs/DEVELOPING.md)
    "predictions.json": "k3dn predict",
    "model.json": "k3dn train",
    "log.csv": "k3dn train",
    "protocol_sensitivity.csv": "k3dn report sensitivity",
    "table7b_pixel_defocus.csv": "k3dn report defocus",
    "dpdd_test_8bit.csv": "k3dn data manifest --protocol 8bit",
    "blur_kernels.npz": "the Pixel set's adapter, under <root>/k3dn_processed/",
    # files of the official code bases, named as facts about them
    "eval.py": "cjsj166/k3dn",
    # the suite's research notes: cited by section, not shipped (config/paper/README.md says so)
    "datasets.md": "research notes",
    "baselines.md": "research notes",
    "k3dn_paper.md": "research notes",
    "xin2021.md": "research notes",
}
GLOBAL_OPTIONS = {"--debug", "-v", "--verbose", "-q", "--quiet", "-h", "--help"}

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_SPAN = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_TOKEN = re.compile(r"[^\s,;()\[\]\"'|`]+")
_PYNAME = re.compile(r"^(?:k3dn|baselines)(?:\.[A-Za-z_]\w*)+")
_LISTED = re.compile(r"`((?:k3dn|baselines)(?:\.\w+)*)` \(((?:`\w+`,?\s*)+)\)")
_RULES = re.compile(r"\(rules? ((?:`\w+`(?:,\s*)?)+)\)")
_OPTION = re.compile(r"(?<![\w-])(--[A-Za-z][\w-]*)(?:[ =]([^\s\])|]+(?:\|[^\s\])|]+)*))?")


def _code(text: str) -> list[str]:
    """Fenced blocks (one string each) and inline code spans of ``text``; spans may cross lines."""
    blocks = _FENCE.findall(text)
    rest = _FENCE.sub("", text)
    return blocks + [s.replace("\n", " ") for s in _SPAN.findall(rest)]


def _pages() -> list[tuple[str, str]]:
    return [(name, (ROOT / name).read_text()) for name in DOCS]


def _repo_file_names() -> set[str]:
    names = set()
    for folder, dirs, files in os.walk(ROOT):
        rel = Path(folder).relative_to(ROOT)
        skip = [d for d in dirs if d.startswith(".") or d.endswith(".egg-info") or d == "__pycache__"]
        skip += [d for d in dirs if f"{(rel / d).as_posix()}/" in OUTPUT_ROOTS]
        dirs[:] = [d for d in dirs if d not in skip]
        names.update(files)
    return names


def _as_glob(path: str) -> str:
    return re.sub(r"<[^>]*>", "*", path)


def _path_problem(token: str, page: str, top: set[str], names: set[str]) -> str | None:
    token = token.rstrip(".:")
    if "://" in token or token.startswith(("-", "$", "~")):
        return None
    first = token.split("/", 1)[0]
    if "/" in token and first in top:
        if token.startswith(OUTPUT_ROOTS) and token != "results/README.md":
            return None
        pattern = _as_glob(token.rstrip("/"))
        hits = glob.glob(str(ROOT / pattern)) if any(c in pattern for c in "*?") else [ROOT / pattern]
        return None if any(Path(h).exists() for h in hits) else f"{page}: `{token}` does not exist"
    if "/" not in token and Path(token).suffix in SOURCE_SUFFIXES and not _placeholder(token) and "*" not in token:
        if token in top or (ROOT / Path(page).parent / token).exists() or token in names or token in NOT_IN_REPO:
            return None
        return f"{page}: `{token}` is no file of the repository (add it to NOT_IN_REPO if it is not meant to be)"
    return None


def _resolve(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)  # AttributeError: the page names something the module lacks
        return obj
    raise ModuleNotFoundError(dotted)


def _subparsers(parser: argparse.ArgumentParser) -> dict | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return None


def _placeholder(word: str) -> bool:
    return word.startswith(("...", "…")) or "<" in word or word.split(".")[0].isupper() or word.startswith(("[", "("))


def _command_problems(words: list[str], where: str, top: argparse.ArgumentParser) -> list[str]:
    """``words`` follow ``k3dn``: the command path, then its first positional or its options."""
    parser, path = top, ["k3dn"]
    words = [w for w in words if w not in GLOBAL_OPTIONS]
    rest = words
    for i, word in enumerate(words):
        if word.startswith("-") or _placeholder(word):
            rest = words[i:]
            break
        choices = _subparsers(parser)
        if choices is None:  # a leaf command: the word is its first positional
            positional = next((a for a in parser._actions if not a.option_strings and a.dest != "help"), None)
            if positional is not None and positional.choices and word not in positional.choices:
                return [f"{where}: `{' '.join(path)} {word}`: {word} is not one of {sorted(positional.choices)}"]
            rest = words[i + 1 :]
            break
        if word not in choices:
            return [f"{where}: `{' '.join(path)} {word}`: no such command (has {sorted(choices)})"]
        parser, path = choices[word], [*path, word]
        rest = words[i + 1 :]
    if _subparsers(parser) is not None and path == ["k3dn"]:
        return []  # `k3dn --help`, `k3dn ...`
    options = {s: a for a in parser._actions for s in a.option_strings}
    problems = []
    for option, value in _OPTION.findall(" ".join(rest)):
        if option not in options:
            problems.append(f"{where}: `{' '.join(path)}` has no option {option}")
            continue
        choices, convert = options[option].choices, options[option].type or str
        if choices and value and not _placeholder(value):
            for v in value.split("|"):
                if convert(v) not in choices:  # argparse converts before it checks the choices
                    problems.append(f"{where}: `{' '.join(path)} {option} {v}`: not one of {sorted(choices)}")
    return problems


def _commands(code: str) -> list[list[str]]:
    """Each ``k3dn ...`` in a piece of code, up to the end of its line or a shell separator, as a word list."""
    found = []
    for line in code.splitlines():
        for m in re.finditer(r"(?<![\w./-])k3dn(?![\w./-])(.*)", line):
            # a usage line's `|` separates alternatives (`--dtype float32|bfloat16`), so only these end a command
            command = re.split(r"\s(?:&&|\|\||;)\s|\s#", m.group(1))[0]
            found.append([w.rstrip("`),:;") for w in command.split()])
    return found


def _group_span(span: str, top: argparse.ArgumentParser) -> list[str] | None:
    words = span.split()
    groups = {n for n, p in _subparsers(top).items() if _subparsers(p) is not None}
    if len(words) >= 2 and words[0] in groups and not words[1].startswith("-"):
        return words
    return None


@pytest.fixture(scope="module")
def parser():
    return build_parser([])


@pytest.fixture(scope="module")
def pages():
    return _pages()


def test_every_path_named_in_the_docs_exists(pages):
    top = {p.name for p in ROOT.iterdir()} | {r.rstrip("/") for r in OUTPUT_ROOTS}
    names = _repo_file_names()
    problems = []
    for page, text in pages:
        tokens = [t for piece in _code(text) for t in _TOKEN.findall(piece)] + _LINK.findall(text)
        problems += filter(None, (_path_problem(t, page, top, names) for t in tokens))
    assert not problems, "\n".join(sorted(set(problems)))


def test_the_allow_list_holds_only_names_the_repository_lacks():
    stale = sorted(set(NOT_IN_REPO) & _repo_file_names())
    assert not stale, f"in the repository, so checked like any other name: {stale}"


def test_every_python_name_in_the_docs_imports(pages):
    problems, seen = [], 0
    for page, text in pages:
        words = [w for piece in _code(text) for w in piece.split() if Path(w).suffix not in SOURCE_SUFFIXES]
        dotted = {m.group(0) for m in map(_PYNAME.match, words) if m}
        listed = {f"{mod}.{n}" for mod, names in _LISTED.findall(text) for n in re.findall(r"`(\w+)`", names)}
        seen += len(dotted | listed)
        for name in sorted(dotted | listed):
            try:
                _resolve(name)
            except (ImportError, AttributeError) as e:
                problems.append(f"{page}: `{name}`: {type(e).__name__}: {e}")
    assert seen > 20  # the pages do name modules: a pattern that matched none would pass vacuously
    assert not problems, "\n".join(problems)


def test_every_k3dn_command_and_option_in_the_docs_exists(pages, parser):
    problems, seen = [], 0
    for page, text in pages:
        for piece in _code(text):
            for words in _commands(piece):
                seen += 1
                problems += _command_problems(words, page, parser)
            group = _group_span(piece, parser) if "\n" not in piece else None
            if group is not None and not re.search(r"(?<![\w./-])k3dn(?![\w./-])", piece):
                seen += 1
                problems += _command_problems(group, page, parser)
    assert seen > 20  # the pages do name commands: a parser that reads none would pass vacuously
    assert not problems, "\n".join(problems)


def test_every_script_option_in_the_docs_exists(pages):
    """``python scripts/x.py ... --opt``: the script must define the option (its argparse call names it)."""
    problems, seen = [], 0
    for page, text in pages:
        for piece in _code(text):
            for script, args in re.findall(r"python3? (scripts/[\w/]+\.py)([^\n`]*)", piece):
                seen += 1
                source = (ROOT / script).read_text()
                problems += [
                    f"{page}: {script} has no option {o}" for o, _ in _OPTION.findall(args) if f'"{o}"' not in source
                ]
    assert seen, "no `python scripts/...` found: the pattern no longer matches the pages"
    assert not problems, "\n".join(problems)


def test_every_rule_named_in_the_docs_exists(pages):
    rules = set()
    for f in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        rules |= set(re.findall(r"^(?:rule|checkpoint) (\w+):", f.read_text(), re.M))
    named = {(page, r) for page, text in pages for g in _RULES.findall(text) for r in re.findall(r"`(\w+)`", g)}
    assert named, "no '(rule `x`)' found: the pattern no longer matches the pages"
    problems = sorted(
        f"{page}: rule `{r}` is in neither the Snakefile nor workflow/rules" for page, r in named if r not in rules
    )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "doc,expected",
    [
        ("see `k3dn/no_such_module.py`", "does not exist"),
        ("files `tests/test_nothing_*.py`", "does not exist"),
        ("the fixture `no_such_fixture.npz`", "no file of the repository"),
    ],
)
def test_the_path_check_catches_a_wrong_path(doc, expected):
    top = {p.name for p in ROOT.iterdir()}
    names = _repo_file_names()
    problems = [p for t in _TOKEN.findall(_code(doc)[0]) if (p := _path_problem(t, "x.md", top, names))]
    assert len(problems) == 1 and expected in problems[0]


@pytest.mark.parametrize(
    "code,expected",
    [
        ("k3dn report nothing", "no such command"),
        ("k3dn predict --no-such-option X", "has no option --no-such-option"),
        ("k3dn predict --dtype float32|float16", "--dtype float16`: not one of"),
        ("k3dn report figure no_such_figure", "no_such_figure is not one of"),
    ],
)
def test_the_command_check_catches_a_wrong_command(code, expected, parser):
    (words,) = _commands(code)
    problems = _command_problems(words, "x.md", parser)
    assert len(problems) == 1 and expected in problems[0]


@pytest.mark.parametrize("name", ["k3dn.infer.no_such_function", "k3dn.no_such_module", "baselines.rdpd.radial_mask.x"])
def test_the_python_name_check_catches_a_wrong_name(name):
    with pytest.raises((ImportError, AttributeError)):
        _resolve(name)
