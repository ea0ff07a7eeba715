"""The documentation works: README.md and docs/*.md link only to files that exist, every
`python -m robustmix...` command they show parses with its entry point's parser (and each entry
point's --help exits 0), every study file they name passes --check, and `python -m robustmix`
lists the pipeline's commands. Light: no training, torch only in the one --check subprocess."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PIPELINE = ("noise", "attack", "report", "study")

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE = re.compile(r"`[^`]+`")
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target) and ![alt](target)
COMMAND = re.compile(r"python -m (robustmix(?:\.[A-Za-z_]\w*)*)")
STUDY = re.compile(r"experiments/[\w.-]+\.toml")


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@cache
def text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def commands(page: Path) -> list[str]:
    """Every `python -m robustmix...` command line shown: code-block lines and inline code,
    whitespace collapsed, cut at a comment or at the next command of an && chain."""
    t = text(page)
    snippets = [line for block in FENCE.findall(t) for line in block.splitlines()[1:-1]]
    snippets += [s.strip("`") for s in INLINE.findall(FENCE.sub("", t))]
    found = []
    for s in snippets:
        s = " ".join(s.split())
        for part in s.split("&&"):
            part = part.split(" # ")[0].strip()
            if COMMAND.match(part):
                found.append(part)
    return found


def all_commands() -> list[tuple[str, str]]:
    return [(page_id(p), c) for p in PAGES for c in commands(p)]


def test_pages_exist_and_show_commands():
    assert (ROOT / "docs" / "README.md") in PAGES and len(PAGES) > 2
    assert len(text(ROOT / "README.md").splitlines()) <= 200
    for p in PAGES:
        if p.parent.name == "docs":  # each page starts from a command that runs
            first_block = FENCE.search(text(p))
            assert first_block and "python" in first_block.group(0), page_id(p)
    shown = {c.split()[2] for _, c in all_commands()}
    assert {f"robustmix.{m}" for m in PIPELINE} <= shown


def anchors(page: Path) -> set[str]:
    """The heading anchors a repository host makes: lower case, punctuation dropped, spaces
    to hyphens."""
    headings = re.findall(r"^#+ (.*)$", FENCE.sub("", text(page)), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_resolve(page):
    body = INLINE.sub("", FENCE.sub("", text(page)))
    broken = []
    for target in LINK.findall(body):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # a URL or mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(target)
    assert not broken, f"{page_id(page)}: links to missing files or headings: {broken}"


def entry_point(name: str) -> Path:
    """The file `python -m NAME` runs; fails when there is none."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin, f"python -m {name}: no such module"
    if spec.submodule_search_locations is not None:  # a package: its __main__
        spec = importlib.util.find_spec(name + ".__main__")
        assert spec is not None, f"python -m {name}: a package without __main__"
    source = Path(spec.origin)
    assert 'if __name__ == "__main__"' in source.read_text(), f"{source} is not an entry point"
    return source


@pytest.mark.parametrize("page, command", all_commands())
def test_command_parses(page, command):
    """Each command shown names an entry point, and its flags are ones its parser accepts."""
    argv = shlex.split(command)
    name, args = argv[2], argv[3:]
    entry_point(name)
    module = importlib.import_module(name if name != "robustmix" else "robustmix.__main__")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            if name == "robustmix":
                assert module.main(args) == 0, f"{page}: {command}"
            else:
                module.build_parser().parse_args(args)
        except SystemExit as e:  # --help
            assert e.code == 0, f"{page}: {command}"


def test_help_of_each_entry_point():
    names = sorted({c.split()[2] for _, c in all_commands()})
    for name in names:
        res = subprocess.run([sys.executable, "-m", name, "--help"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, f"python -m {name} --help: {res.stderr[-500:]}"
        assert res.stdout.strip(), f"python -m {name} --help printed nothing"


def test_study_files_check():
    """Every study file named, checked once, all in one subprocess (torch is imported once)."""
    files = sorted({m for p in PAGES for m in STUDY.findall(text(p))})
    assert files and all((ROOT / f).is_file() for f in files), files
    code = (
        "import contextlib, io, json, sys\n"
        "from robustmix.cli import run_main\n"
        "from robustmix.study import main\n"
        "res = {}\n"
        "for f in sys.argv[1:]:\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):\n"
        "        res[f] = [run_main(main, [f, '--check']), err.getvalue()[-500:]]\n"
        "print(json.dumps(res))\n")
    res = subprocess.run([sys.executable, "-c", code, *files], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    failed = {f: err for f, (rc, err) in json.loads(res.stdout.splitlines()[-1]).items() if rc}
    assert not failed, f"python -m robustmix.study FILE --check failed: {failed}"


def test_python_m_robustmix_lists_the_commands():
    code = ("import runpy, sys\n"
            "try:\n    runpy.run_module('robustmix', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(k for k in ('torch', 'numpy', 'pandas', 'matplotlib') if k in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[-1] == "[]"  # imports nothing heavy: it answers at once
    for m in PIPELINE:
        assert sum(f"python -m robustmix.{m} " in line for line in lines) == 1, m
    docs = lines[-2].split("Documentation: ")[1]
    assert Path(docs) == ROOT / "docs" / "README.md" and Path(docs).is_file()
    bad = subprocess.run([sys.executable, "-m", "robustmix", "nonsense"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "takes no arguments" in bad.stderr
