"""The dependency rules of the three packages (README, "Architecture"), checked on their source.

* protocols/ imports the standard library, numpy and msgpack only: a client decodes events
  without torch. The subscriber SDK's transports (aiohttp, nats-py) are imported inside the
  functions that open such a URL, and only there.
* model/ is synchronous and does no media or network I/O: no asyncio, no streamer or
  protocols, no media, HTTP or socket libraries. Its embedded model's training application
  (model/embedded: the world generator, cv2, training loops) is a package the runtime never
  imports; only the `world://` source loads the world, when such a stream opens.
* Ray is imported only by streamer/cluster (the optional `cluster` extra): the default install
  runs without it, and no other module loads it.
* No import cycles among the modules of the three packages, counting imports inside functions
  (a function-level import that closes a cycle is a cycle postponed, not removed).

Every import statement counts wherever it sits (module level, functions, `if TYPE_CHECKING:`).
The negative cases at the end build small trees that break each rule and show the checks fail.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("protocols", "model", "streamer")
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}

PROTOCOLS_THIRD_PARTY = {"numpy", "msgpack"}
# module -> third-party packages it may import inside a function, and why
PROTOCOLS_LAZY = {"protocols.subscribe": {"aiohttp", "nats"}}  # ws:// and nats:// subscriptions
MODEL_FORBIDDEN = {
    "asyncio", "streamer", "protocols",  # synchronous, and knows nothing of the engine or the wire
    "av", "cv2", "PIL", "imageio", "aiohttp", "aiortc", "requests", "socket", "http",
    "urllib", "subprocess", "multiprocessing", "nats",  # media, network and process I/O
}  # fmt: skip
EMBEDDED = "model.embedded"
# modules outside model/embedded that may import it inside a function, and why
EMBEDDED_LAZY = {"streamer.sources.world"}  # renders world clips when a world:// stream opens
CLUSTER = "streamer.cluster"  # the only package that may import ray (the optional 'cluster' extra)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. "model.video.frame"
    target: str  # the imported module, resolved to a module of the tree where it is one
    line: int
    top_level: bool  # at module level (else inside a function or class body)


def modules(root: Path) -> dict[str, Path]:
    """Every module of the three packages under `root`: dotted name -> file."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(root: Path) -> Iterator[Import]:
    """Every import statement of every module, with relative imports resolved."""
    known = modules(root)
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import submodule` imports the submodule; `from mod import name`, mod
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
                ]
            else:
                continue
            for target in dict.fromkeys(targets):
                yield Import(name, target, node.lineno, id(node) in top_level)


def violations(root: Path) -> list[str]:
    """Each broken rule as one line naming the file, the line and the import."""
    found = []
    for imp in imports(root):
        top = imp.target.split(".")[0]
        where = f"{imp.module.replace('.', '/')}.py:{imp.line} imports {imp.target}"
        if imp.module.startswith("protocols"):
            lazy_ok = not imp.top_level and top in PROTOCOLS_LAZY.get(imp.module, set())
            if (
                top not in STDLIB
                and top != "protocols"
                and top not in PROTOCOLS_THIRD_PARTY
                and not lazy_ok
            ):
                found.append(
                    f"{where}: protocols/ imports only the standard library, numpy and msgpack"
                )
        in_cluster = imp.module == CLUSTER or imp.module.startswith(CLUSTER + ".")
        if top == "ray" and not in_cluster:
            found.append(f"{where}: only streamer/cluster imports ray (the 'cluster' extra)")
        in_embedded = imp.module == EMBEDDED or imp.module.startswith(EMBEDDED + ".")
        if imp.module.startswith("model") and not in_embedded and top in MODEL_FORBIDDEN:
            found.append(f"{where}: model/ is synchronous and does no I/O")
        if imp.target == EMBEDDED or imp.target.startswith(EMBEDDED + "."):
            lazy_ok = not imp.top_level and imp.module in EMBEDDED_LAZY
            if not in_embedded and not lazy_ok:
                found.append(f"{where}: the runtime never imports the embedded training package")
    return sorted(found)


def cycles(root: Path) -> list[list[str]]:
    """The import cycles among the tree's modules (strongly connected components, Tarjan)."""
    known = modules(root)
    graph: dict[str, set[str]] = {name: set() for name in known}
    for imp in imports(root):
        if imp.target in known and imp.target != imp.module:
            graph[imp.module].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_packages_keep_their_dependency_rules() -> None:
    assert violations(ROOT) == []


def test_no_import_cycles() -> None:
    assert cycles(ROOT) == []


def test_the_checks_see_every_package() -> None:
    names = modules(ROOT)
    assert {"protocols.codec", "model.video.frame", "streamer.engine"} <= set(names)
    assert any(i.module == "model.build" and i.target == "model.sam3" for i in imports(ROOT))


# Modules the engine imports for their types and plumbing: none may pull in torch (3-4 s).
TORCH_FREE = ("model.types", "model.config", "protocols", "streamer.engine", "streamer.sources",
              "streamer.api", "streamer.cli")  # fmt: skip


@pytest.mark.parametrize("module", TORCH_FREE)
def test_importing_does_not_load_torch(module: str) -> None:
    # -X importtime names every module imported, as `python -X importtime -c "import model.types"`
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert module in loaded
    assert "torch" not in loaded, f"import {module} loads torch"
    assert "ray" not in loaded, f"import {module} loads ray: only cluster mode may"


# --- the checks fail when a rule is broken ------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "culprit"),
    [
        ({"protocols/codec.py": "import torch\n"}, "protocols/codec.py:1 imports torch"),
        ({"protocols/codec.py": "def f():\n    import aiohttp\n"}, "protocols/codec.py:2 imports aiohttp"),
        ({"model/loop.py": "import asyncio\n"}, "model/loop.py:1 imports asyncio"),
        ({"model/loop.py": "from protocols import events\n"}, "model/loop.py:1 imports protocols"),
        ({"model/video.py": "def f():\n    import cv2\n"}, "model/video.py:2 imports cv2"),
        ({"model/build.py": "from model.embedded import vocab\n", "model/embedded/__init__.py": "",
          "model/embedded/vocab.py": ""}, "model/build.py:1 imports model.embedded.vocab"),
        ({"streamer/cli.py": "import model.embedded.world\n", "model/embedded/__init__.py": "",
          "model/embedded/world.py": ""}, "streamer/cli.py:1 imports model.embedded.world"),
        ({"streamer/api.py": "def f():\n    import ray\n"}, "streamer/api.py:2 imports ray"),
    ],
)  # fmt: skip
def test_a_forbidden_import_is_named(tmp_path: Path, files: dict[str, str], culprit: str) -> None:
    found = violations(_tree(tmp_path, files))
    assert len(found) == 1 and found[0].startswith(culprit), found


def test_allowed_imports_pass(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "protocols/subscribe.py": "import re\nimport numpy\n\ndef f():\n    import aiohttp\n",
        "model/embedded/__init__.py": "import cv2\n",
        "streamer/sources/world.py": "def f():\n    from model.embedded import world\n",
        "streamer/cluster/worker.py": "import ray\n",
    })  # fmt: skip
    assert violations(root) == []


def test_a_function_level_cycle_is_a_cycle(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "model/a.py": "from model.b import x\n",
        "model/b.py": "def f():\n    from model.a import y\n",
        "model/c.py": "from model import a\n",
    })  # fmt: skip
    assert cycles(root) == [["model.a", "model.b"]]
