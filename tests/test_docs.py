"""docs/design.md is the design the code cites, and it stays in step with the tree.

- every `§N.N` citation anywhere in the repository (code, tests, SQL, Makefile, infra, docs, and
  design.md's own cross-references) names a section heading that exists in docs/design.md;
- no file cites the old design outside the repository;
- the layout sections (design §7 and the README) name every package and top-level module, and
  design §3 names every CLI command.
Fast: reads files only, no emulator.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
README = ROOT / "README.md"
HEADING = re.compile(r"^#{2,4} §(\d+(?:\.\d+)*) ", re.MULTILINE)
CITATION = re.compile(r"§(\d+(?:\.\d+)*)")
# Citations of the design that lived outside the repository (built so this file does not match).
OLD_DESIGN = re.compile(r"\b" + "DESIGN" + r"(?:\.md)?\b|\.\./" + "shared/")
# Directories that are not the project's own files (virtualenvs, state, caches, VCS).
SKIP_DIRS = {"__pycache__", "build", "dist", "node_modules"}
KEEP_HIDDEN = {".ci", ".github"}


def project_files() -> list[Path]:
    """Every text file of the checkout, outside virtualenvs, caches and state."""
    out = []
    stack = [ROOT]
    while stack:
        directory = stack.pop()
        for path in directory.iterdir():
            name = path.name
            if path.is_dir():
                hidden = name.startswith(".") and name not in KEEP_HIDDEN
                if not (hidden or name in SKIP_DIRS or name.endswith(".egg-info")):
                    stack.append(path)
            elif path.is_file() and not name.startswith("."):
                out.append(path)
    return sorted(out)


def read_text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None  # binary (screenshots)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def sections() -> dict[str, str]:
    """Section number → its text (up to the next heading of any numbered section)."""
    text = DESIGN.read_text()
    marks = list(HEADING.finditer(text))
    return {
        m.group(1): text[m.start() : marks[i + 1].start() if i + 1 < len(marks) else len(text)]
        for i, m in enumerate(marks)
    }


def citations() -> dict[str, set[str]]:
    """File (relative path) → the section numbers it cites."""
    out = {}
    for path in project_files():
        text = read_text(path)
        found = set(CITATION.findall(text)) if text else set()
        if found:
            out[str(path.relative_to(ROOT))] = found
    return out


def test_design_sections_are_numbered_once() -> None:
    numbers = HEADING.findall(DESIGN.read_text())
    assert numbers, "docs/design.md has no `## §N …` headings"
    duplicated = sorted({n for n in numbers if numbers.count(n) > 1})
    assert not duplicated, f"section numbers used twice in docs/design.md: {duplicated}"


def test_every_citation_names_an_existing_section() -> None:
    known = set(sections())
    cited = citations()
    # The code does cite the design (the check would be empty otherwise).
    assert any(name.startswith("sales_ops/") for name in cited)
    assert "lambdas/firehose_transform/handler.py" in cited
    missing = {name: sorted(found - known) for name, found in cited.items() if found - known}
    assert not missing, f"citations of sections docs/design.md does not have: {missing}"


def test_no_file_cites_the_design_outside_the_repository() -> None:
    offenders = []
    for path in project_files():
        if path == Path(__file__).resolve():
            continue
        text = read_text(path) or ""
        for number, line in enumerate(text.splitlines(), 1):
            if OLD_DESIGN.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "cite docs/design.md §N instead:\n" + "\n".join(offenders)


def package_parts() -> list[str]:
    """`sales_ops/<package>/` for every package and `sales_ops/<module>.py` for every top-level module."""
    package = ROOT / "sales_ops"
    parts = [f"sales_ops/{p.parent.name}/" for p in sorted(package.glob("*/__init__.py"))]
    parts += [f"sales_ops/{p.name}" for p in sorted(package.glob("*.py")) if p.name != "__init__.py"]
    return parts


def layout_of(text: str) -> str:
    """The `## Layout` section of a markdown file."""
    match = re.search(r"^## Layout\b.*?(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, "no `## Layout` section"
    return match.group(0)


@pytest.mark.parametrize("where", ["design §7", "README"])
def test_layout_names_every_package_and_module(where: str) -> None:
    text = sections()["7"] if where == "design §7" else layout_of(README.read_text())
    missing = [part for part in package_parts() if part not in text]
    assert not missing, f"{where} does not name: {missing}"


def test_design_names_every_cli_command() -> None:
    import typer.main

    from sales_ops.cli import app

    def commands(group, prefix: str) -> list[str]:
        out = []
        for name, command in group.commands.items():
            path = f"{prefix} {name}"
            out += commands(command, path) if hasattr(command, "commands") else [path]
        return out

    names = commands(typer.main.get_command(app), "sales-ops")
    assert "sales-ops local up" in names
    cli_section = sections()["3"]
    missing = [name for name in names if f"`{name}`" not in cli_section]
    assert not missing, f"docs/design.md §3 does not list: {missing}"


def test_design_names_the_column_contract_and_the_rules() -> None:
    from sales_ops.schema import EVENT_COLUMNS, LATEST_ONLY_COLUMNS, NOT_SALE_STATUSES, ORDER_COLUMNS

    text = sections()
    wanted = {
        "2.1": [f"| `{c.name}` |" for c in ORDER_COLUMNS],
        "2.2": [f"`{c.name}`" for c in EVENT_COLUMNS],
        "2.4": [f"`{c.name}` ({c.latest_type})" for c in LATEST_ONLY_COLUMNS],
        "2.6": [f"'{status}'" for status in NOT_SALE_STATUSES],
    }
    missing = {n: [w for w in words if w not in text[n]] for n, words in wanted.items()}
    assert not any(missing.values()), f"docs/design.md does not state: {missing}"
