"""The layout's rules, kept by a test so they outlive the re-layout: no import circle between the
modules of bot/ and handlers/, no module over 400 lines and no class over 300, the domain imports
no handler, each refusal text is written in one place only (bot/policy/rules.py), and no
pattern ends in `$` (issue 32)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 300
# Texts a person is refused or told the quorum with: each must be written once.
ONE_HOME = (
    "not on the sFOX approver list",
    "Only sFOX approvers can",
    "more approval",
    "so you cannot approve it",
    "cannot read the approver group",
    "The reason is too long",
    "A reason is required here",
    '"A reason is required."',
    "can only be used in",
)


def modules() -> dict[str, Path]:
    found = {}
    for top in ("bot", "handlers"):
        for path in (ROOT / top).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """The known modules `path` imports when it runs (module level or in a function), leaving out
    `if TYPE_CHECKING:` blocks; `from pkg import mod` counts as importing pkg and pkg.mod."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_circle():
    known = modules()
    graph = {name: imported(path, name, known) for name, path in known.items()}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_bootstrap_imports_handlers_and_only_the_sandbox_the_fakes():
    known = modules()
    for name, path in known.items():
        targets = imported(path, name, known)
        if name.startswith("bot.") and name != "bot.runtime.bootstrap":
            assert not any(t.split(".")[0] == "handlers" for t in targets), name
        if name.startswith("bot.") and not name.startswith(("bot.fakes", "bot.sandbox")):
            assert not any(t.startswith("bot.fakes") for t in targets), name


def test_modules_and_classes_stay_small():
    too_big = []
    for path in modules().values():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_big.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines (split it by use case)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_CLASS_LINES:
                    too_big.append(f"{path.relative_to(ROOT)}: class {node.name} has {length} lines")
    assert too_big == []


@pytest.mark.parametrize("text", ONE_HOME)
def test_each_refusal_text_is_written_once(text):
    homes = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in modules().values()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if text in line
    ]
    assert len(homes) == 1 and homes[0].startswith("bot/policy/"), homes


def dollar_anchored(tree: ast.AST) -> list[tuple[int, str]]:
    """The `re.*` patterns written as literals that end in an unescaped `$`: it also matches before
    a final newline, so `.match` of `client_1\\n` passes (issue 32). `\\Z` is the whole string."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
            continue
        owner, first = node.func.value, node.args[0]
        if not (isinstance(owner, ast.Name) and owner.id == "re" and node.func.attr in RE_CALLS):
            continue
        literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
        if literal and re.search(r"(?<!\\)(?:\\\\)*\$\Z", first.value):
            found.append((node.lineno, first.value))
    return found


RE_CALLS = {"compile", "match", "fullmatch", "search"}


def test_no_pattern_ends_in_a_dollar():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {pattern!r} (end it in \\Z)"
        for path in modules().values()
        for line, pattern in dollar_anchored(ast.parse(path.read_text()))
    ]
    assert found == []


def test_the_dollar_finder_finds_one():
    code = 'import re\nA = re.compile(r"^[a-z]+$")\nB = re.compile(r"^a\\Z")\nC = re.match(r"x\\$", s)\n'
    assert [line for line, _ in dollar_anchored(ast.parse(code))] == [2]
