"""Small modules: no Python module under ``src/`` is longer than 400 lines.

A module past the limit holds more than one concern; split it along a seam (a cohesive
part into its own module, with a docstring saying what it owns) rather than trimming
lines. Lines are counted as ``wc -l`` counts them (blank lines and comments included).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 400

# Paths relative to the repository root. Each entry is a debt, not a second limit.
ALLOWED: set[str] = set()


def oversized(root: Path, limit: int = LIMIT) -> dict[str, int]:
    """``{path relative to root: lines}`` of every module under ``root/src`` over ``limit``."""
    found = {}
    for path in sorted((root / "src").rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            found[path.relative_to(root).as_posix()] = lines
    return found


def test_no_module_under_src_is_over_the_limit() -> None:
    offenders = {path: n for path, n in oversized(ROOT).items() if path not in ALLOWED}
    listed = "\n".join(f"  {path}: {n} lines" for path, n in offenders.items())
    assert not offenders, f"modules over {LIMIT} lines (split them along a seam):\n{listed}"


def test_allowed_modules_exist() -> None:
    # An entry left behind after a rename or a move would silently allow nothing.
    missing = sorted(path for path in ALLOWED if not (ROOT / path).is_file())
    assert not missing, f"ALLOWED names modules that do not exist: {missing}"


def test_the_check_flags_a_module_one_line_over(tmp_path: Path) -> None:
    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "at_limit.py").write_text("x = 1\n" * LIMIT)
    (package / "over.py").write_text("x = 1\n" * (LIMIT + 1))
    (package / "notes.txt").write_text("x\n" * (LIMIT + 1))  # not a module
    assert oversized(tmp_path) == {"src/pkg/over.py": LIMIT + 1}
