"""Assertions in tests/ that cannot fail, or not for the reason they state, found by reading the code (AST).

``assert A and B or C`` parses as ``(A and B) or C``: it passes whenever C holds, whatever A says. Written with
its parentheses, the grouping is a choice the reader can see and is allowed; without them it is an error here.
``assert (x, "message")`` tests a non-empty tuple, and ``assert "text"`` a constant: both always pass.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _parenthesised(source_lines: list[str], node: ast.expr) -> bool:
    """Whether ``node``'s own text is enclosed in a pair of parentheses that belong to it."""
    before = source_lines[node.lineno - 1][: node.col_offset].rstrip()
    after = source_lines[node.end_lineno - 1][node.end_col_offset :].lstrip()
    return before.endswith("(") and after.startswith(")")


def _findings(source: str, name: str) -> list[str]:
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if not isinstance(node, ast.Assert):
            continue
        test = node.test
        for sub in ast.walk(test):
            if isinstance(sub, ast.BoolOp) and isinstance(sub.op, ast.Or):
                for operand in sub.values:
                    if isinstance(operand, ast.BoolOp) and isinstance(operand.op, ast.And):
                        if not _parenthesised(lines, operand):
                            found.append(f"{name}:{node.lineno}: `and` inside `or` without parentheses")
        if isinstance(test, ast.Tuple) and test.elts:
            found.append(f"{name}:{node.lineno}: asserts a non-empty tuple (always true)")
        if isinstance(test, ast.Constant) and test.value:
            found.append(f"{name}:{node.lineno}: asserts a true constant")
    return found


def test_the_scan_finds_each_shape_and_allows_explicit_grouping():
    bad = "assert a and b or c\nassert c or a and b\nassert (x, 'msg')\nassert 'text'\nassert f(a and b or c)\n"
    assert [f.split(":")[1] for f in _findings(bad, "x.py")] == ["1", "2", "3", "4", "5"]
    good = "assert (a and b) or c\nassert c or (a and b)\nassert a and (b or c)\nassert a or b\nassert (a, b) == t\n"
    assert _findings(good, "y.py") == []


def test_no_assertion_in_tests_is_always_true_or_ambiguous():
    found = [f for path in sorted(TESTS.glob("*.py")) for f in _findings(path.read_text(), path.name)]
    assert not found, "\n".join(found)
