"""The lazy-import rule, checked mechanically on the source (AST; see tests/importgraph.py).

Every import inside a function of a pir module, or of a heavy third-party package (``importgraph.HEAVY``), carries
``# lazy: <reason>`` (on its line or the line above), and the reason holds:

- the imported module is not already loaded when the importing module is imported (by its top-level imports, followed
  transitively through pir's modules); otherwise the function-level import is needless and belongs at the top;
- a reason of the form ``start-up (a, b)`` names heavy packages that the importing module does not load at the top
  (else there is nothing left to defer).
"""

from __future__ import annotations

import re

import pytest

from tests.importgraph import HEAVY, Imp, imports, loaded_at_import

# Known exceptions, by "importing module -> imported module", each with the reason it is allowed.
ALLOWED_NEEDLESS: dict[str, str] = {}  # empty: the SearchRequest refactor removed store.py's open_store re-export


def _guarded() -> list[Imp]:
    return [i for i in imports() if i.kind == "function" and (i.root == "pir" or i.root in HEAVY)]


def _deferred(imp: Imp) -> str:
    """The name whose loading the import defers: the pir module itself, or the third-party package's root."""
    return imp.target if imp.root == "pir" else imp.root


def test_the_rule_sees_the_imports() -> None:
    """The scan finds pir's function-level imports (a broken scan would make the checks below pass vacuously)."""
    guarded = _guarded()
    assert len(guarded) > 50
    assert any(i.root == "torch" for i in guarded)
    assert any(i.target == "pir.pipeline" for i in guarded)


def test_function_level_imports_say_why() -> None:
    missing = [f"{i.where}: {i.text}" for i in _guarded() if not i.comment]
    assert not missing, "function-level imports without a `# lazy: <reason>` comment:\n" + "\n".join(missing)


def test_function_level_imports_are_not_needless() -> None:
    needless = [
        f"{i.where}: {i.text}  ({_deferred(i)} is already loaded by {i.module}'s top-level imports)"
        for i in _guarded()
        if _deferred(i) in loaded_at_import(i.module) and f"{i.module} -> {i.target}" not in ALLOWED_NEEDLESS
    ]
    assert not needless, "needless function-level imports (move them to the top):\n" + "\n".join(needless)


def test_start_up_reasons_name_what_is_deferred() -> None:
    wrong = []
    for imp in _guarded():
        m = re.match(r"start-up \(([^)]*)\)", imp.comment)
        if not m:
            continue
        named = {n.strip().replace("-", "_") for n in m.group(1).split(",")} & HEAVY
        loaded = named & loaded_at_import(imp.module)
        if loaded:
            wrong.append(f"{imp.where}: {imp.comment!r} but {imp.module} already loads {sorted(loaded)} at the top")
    assert not wrong, "`# lazy: start-up (...)` reasons that do not hold:\n" + "\n".join(wrong)


def test_allow_list_entries_are_still_needed() -> None:
    """An allow-list entry whose import is gone must go too (the list only shrinks)."""
    present = {f"{i.module} -> {i.target}" for i in _guarded()}
    assert set(ALLOWED_NEEDLESS) <= present, set(ALLOWED_NEEDLESS) - present


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("pir.enrich.aliases", "pir.enrich.backends"),
        ("pir.enrich.aliases", "httpx"),
        ("pir.cli", "torch"),
        ("pir.cli", "pydantic_settings"),
    ],
)
def test_light_modules_stay_light(module: str, absent: str) -> None:
    """The search path's alias table does not load the LLM HTTP client; the CLI's start-up (`pir --help`) loads no
    torch and no pydantic-settings (the settings are read when a command runs)."""
    assert absent not in loaded_at_import(module)
