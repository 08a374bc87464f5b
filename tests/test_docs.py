"""The code in README.md and docs/ runs, and prints what the page says.

Every ```python block of a page runs, in order, in one namespace per page
(so a page can build on its earlier blocks), in a new process per page; a
block written as a script (``if __name__ == "__main__":``, e.g. for
multiprocessing) runs as one, in a process of its own.  Where a ```text block follows a python block directly, it is
the expected output: compared line by line, exactly.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]   # docs/ops/ too
_BLOCK = re.compile(r"```(\w[\w-]*)[^\n]*\n(.*?)```", re.S)


def blocks(page: Path) -> list[tuple[str, str | None]]:
    """(code, expected output or None) for each python block of ``page``."""
    found = [(m.group(1), m.group(2), m.start(), m.end()) for m in _BLOCK.finditer(page.read_text())]
    text = page.read_text()
    out = []
    for k, (lang, body, _, end) in enumerate(found):
        if lang != "python":
            continue
        expected = None
        if k + 1 < len(found) and found[k + 1][0] == "text" and not text[end:found[k + 1][2]].strip():
            expected = found[k + 1][1]
        out.append((body, expected))
    return out


_MARK = "@@symdl-docs-block-{}@@"


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_page_code_runs_and_prints_what_the_page_shows(page, tmp_path):
    # A page runs in a new process, as a reader would run it: nothing that other
    # tests defined (user functions, environment variables) shows up in its output.
    page_blocks = blocks(page)
    printed = _run_page(page_blocks, tmp_path)
    for k, (code, expected) in enumerate(page_blocks):
        if '__name__ == "__main__"' in code:
            out = _run_script(code, tmp_path / f"block{k}.py")
        else:
            out = printed[k]
        if expected is not None:
            got = out.rstrip("\n").splitlines()
            want = expected.rstrip("\n").splitlines()
            assert len(got) == len(want) and all(_matches(g, w) for g, w in zip(got, want)), \
                f"{page.name} block {k} printed:\n{out}\nthe page shows:\n{expected}"


def _run_page(page_blocks, tmp_path: Path) -> dict[int, str]:
    """Run the in-process blocks of a page in order, in one namespace, in a new
    process; what each block printed, by block number."""
    lines = ["import sys", "namespace = {'__name__': '__docs__'}"]
    for k, (code, _) in enumerate(page_blocks):
        if '__name__ == "__main__"' in code:
            continue
        lines.append(f"print({_MARK.format(k)!r}); sys.stdout.flush()")
        lines.append(f"exec(compile({code!r}, 'block {k}', 'exec'), namespace)")
    script = tmp_path / "page.py"
    script.write_text("\n".join(lines) + "\n")
    out = _run_script(script.read_text(), script)
    printed: dict[int, str] = {}
    for part in re.split(r"@@symdl-docs-block-(\d+)@@\n", out)[1:]:
        if part.isdigit():
            current = int(part)
        else:
            printed[current] = part
    return printed


def _matches(line: str, expected: str) -> bool:
    if "..." not in expected:
        return line == expected
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, line) is not None


def _run_script(code: str, path: Path) -> str:
    path.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(path)], cwd=path.parent, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{path.name} failed:\n{done.stderr}"
    return done.stdout


def test_every_page_is_found():
    assert (ROOT / "README.md") in PAGES and len(PAGES) > 3
    assert os.path.exists(ROOT / "docs" / "concepts.md")
