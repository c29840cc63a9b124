"""Every file and README section that the code, its docstrings and comments, the README and docs/ refer to exists.

What counts as a reference:
- a `*.md` path in a Python comment or docstring, or anywhere in a Markdown, shell, C++/CUDA or YAML file; it
  resolves relative to the referring file's folder or to the repository root;
- a section named after a Markdown file, `README "Layout"` or `docs/models.md "MAXIM"`: that file has the heading;
- a Markdown link `[text](path#anchor)` in a Markdown file: the path exists and, with an anchor, has that heading
  (GitHub's anchor for it).
Ordinary string literals in Python (say the name of a Markdown file a tool writes) are not references, and neither is
another repository's README (`owner/repo README "Usage"`).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCANNED = [
    "visiongates",
    "tools",
    "export",
    "tests",
    "configs",
    "docs",
    "requirements",
    ".ci",
    "README.md",
    "Makefile",
    "setup.py",
]
TEXT_SUFFIXES = {".md", ".sh", ".cu", ".cuh", ".h", ".cpp", ".yaml", ".yml", ".txt", ""}

MD_PATH = re.compile(r"(?<![\w/.-])((?:\.{1,2}/|[\w.-]+/)*[\w-]+\.md)\b")
SECTION = re.compile(r"""\b((?:[\w.-]+/)*[\w-]+(?:\.md)?)(?:'s)?\s+(?:section\s+)?["“]([^"”\n]+)["”]""")
OTHER_REPO = re.compile(r"[\w.-]+/[\w.-]+(?:'s)?[,:]?\s*(?:official\s+)?\Z")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)  # no '#' comments of code blocks
    return {h.strip() for h in HEADING.findall(text)}


def prose(path: Path) -> str:
    """The text of `path` that can hold a reference: comments and docstrings for Python, everything otherwise."""
    text = path.read_text(errors="replace")
    if path.suffix != ".py":
        return text
    parts = [tok.string for tok in tokenize.generate_tokens(io.StringIO(text).readline) if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                parts.append(doc)
    return "\n".join(parts)


def resolve(target: str, referrer: Path, repo: Path) -> Path | None:
    for base in (referrer.parent, repo):
        candidate = (base / target).resolve()
        if candidate.exists():
            return candidate
    return None


def broken_references(path: Path, repo: Path = REPO) -> list[str]:
    """The references in `path` that do not resolve, each as a short description."""
    text = prose(path)
    broken = []
    for target in sorted(set(MD_PATH.findall(text))):
        if resolve(target, path, repo) is None:
            broken.append(target)
    for match in SECTION.finditer(text):
        name, title = match.groups()
        if name.lower() != "readme" and not name.endswith(".md"):
            continue
        if OTHER_REPO.search(text, 0, match.start()):  # "Jongchan/attention-module, README ..."
            continue
        doc = resolve("README.md" if name.lower() == "readme" else name, path, repo)
        if doc is None:
            broken.append(name)
        elif title.strip() not in headings(doc):
            broken.append(f'{name} "{title}"')
    if path.suffix == ".md":
        for link in LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", link):  # https:, mailto: ...
                continue
            target, _, fragment = link.partition("#")
            doc = resolve(target, path, repo) if target else path
            missing_anchor = (
                fragment
                and doc is not None
                and doc.suffix == ".md"
                and fragment not in {anchor(h) for h in headings(doc)}
            )
            if doc is None or missing_anchor:
                broken.append(link)
    return broken


def scanned_files(repo: Path = REPO) -> list[Path]:
    files = []
    for name in SCANNED:
        root = repo / name
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        files += [
            p
            for p in candidates
            if p.is_file() and (p.suffix == ".py" or p.suffix in TEXT_SUFFIXES) and "__pycache__" not in p.parts
        ]
    return files


def test_every_reference_resolves() -> None:
    found = {(str(p.relative_to(REPO)), ref) for p in scanned_files() for ref in broken_references(p)}
    assert not found, f"references to files or sections that do not exist: {sorted(found)}"


def test_docs_exist_and_are_linked_from_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for name in ("architecture.md", "models.md", "bigla.md", "benchmarks.md"):
        assert (REPO / "docs" / name).is_file()
        assert f"(docs/{name}" in readme, f"README does not link docs/{name}"


# ------------------------------------------------------------------------ the scanner itself can fail


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    notes = "# Notes\n\n## The op: maths\n\nSee [the README](../README.md#usage).\n"
    (tmp_path / "docs" / "notes.md").write_text(notes)
    (tmp_path / "README.md").write_text("# Tool\n\n## Usage\n\nRead [notes](docs/notes.md#the-op-maths).\n")
    return tmp_path


def test_scanner_accepts_existing_references(fake_repo: Path) -> None:
    code = fake_repo / "pkg" / "mod.py"
    code.parent.mkdir()
    code.write_text('"""As docs/notes.md says (README "Usage")."""\n\nOUT = "out.md"  # see ../docs/notes.md\n')
    assert broken_references(code, fake_repo) == []
    assert broken_references(fake_repo / "README.md", fake_repo) == []
    assert broken_references(fake_repo / "docs" / "notes.md", fake_repo) == []


def test_scanner_reports_missing_files_sections_and_anchors(fake_repo: Path) -> None:
    code = fake_repo / "mod.py"
    code.write_text('"""See models.md and README "DAS: our choices"."""\n\n\ndef f():\n    pass  # design/bigla.md\n')
    assert broken_references(code, fake_repo) == ["design/bigla.md", "models.md", 'README "DAS: our choices"']
    (fake_repo / "docs" / "bad.md").write_text("[a](notes.md#no-such-heading) [b](gone.md) [c](https://x.org/y.md)\n")
    assert broken_references(fake_repo / "docs" / "bad.md", fake_repo) == [
        "gone.md",
        "notes.md#no-such-heading",
        "gone.md",
    ]
