"""The generator killed mid-write: ``chart/`` is never half-written, the next run starts clean.

``generator/emit.py`` renders the whole tree into ``.chart.<random>.tmp`` beside
``chart/`` and swaps the two folders in one ``renameat2(RENAME_EXCHANGE)``.
These tests SIGKILL the real generator (no mocks of the code under test):
at chosen points, by a driver that slows file writes down and reports each
one, and at random times in a loop. After every kill ``chart/`` must be,
byte for byte, one complete render (the one before or the one after), and
the next run must succeed and leave nothing behind.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_generator, tree_bytes

# Runs the generator with every file write (and the swap's cleanup) reported on stdout and slowed down,
# so a test can kill it between any two steps. The generator's own code is unchanged.
DRIVER = textwrap.dedent('''
    import os, shutil, sys, time
    from pathlib import Path
    sys.path.insert(0, os.environ["VEMON_SRC"])
    import generator.emit as emit
    pause = float(os.environ.get("PAUSE", "0.1"))
    write_bytes, rmtree, rename = Path.write_bytes, shutil.rmtree, Path.rename

    def step(what):
        print(what, flush=True)
        time.sleep(pause)

    def slow_write(self, data):
        n = write_bytes(self, data)
        step(f"wrote {self}")
        return n

    def slow_rmtree(path, *a, **kw):
        step(f"rmtree {path}")
        return rmtree(path, *a, **kw)

    def slow_rename(self, target):
        out = rename(self, target)
        step(f"renamed {self} -> {target}")
        return out

    Path.write_bytes = slow_write
    Path.rename = slow_rename
    emit.shutil.rmtree = slow_rmtree
    if os.environ.get("NO_EXCHANGE"):
        emit._exchange = lambda a, b: False   # the fallback path of systems without renameat2
    from generator.cli import main
    sys.exit(main(sys.argv[1:]))
''')


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".chart"))


def set_cluster(root: Path, name: str) -> None:
    """Two versions of the sources whose renders differ: prod's cluster name."""
    path = root / "values/prod.yaml"
    text = path.read_text()
    for old in ("virtengine-prod", "virtengine-prod-b"):
        text = text.replace(f"cluster: {old}\n", f"cluster: {name}\n")
    path.write_text(text)
    assert f"cluster: {name}\n" in text


@pytest.fixture
def two_renders(project: Path) -> tuple[Path, dict, dict]:
    """The project rendered from sources B and then A; returns (root, tree of A, tree of B)."""
    assert "cluster: virtengine-prod\n" in (project / "values/prod.yaml").read_text()
    set_cluster(project, "virtengine-prod-b")
    assert run_generator(project, "render").returncode == 0
    tree_b = tree_bytes(project / "chart")
    set_cluster(project, "virtengine-prod")
    proc = run_generator(project, "render")
    assert proc.returncode == 0, proc.stderr
    tree_a = tree_bytes(project / "chart")
    assert tree_a != tree_b
    return project, tree_a, tree_b


def run_driver_until(root: Path, marker: str, nth: int = 1, env: dict | None = None, about: str = "") -> list[str]:
    """Starts the slowed generator, SIGKILLs it right after the nth stdout line containing marker (and ``about``)."""
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.Popen([sys.executable, str(driver), "--root", str(root), "render"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "VEMON_SRC": str(ROOT), **(env or {})})
    seen: list[str] = []
    hits = 0
    try:
        for line in proc.stdout:
            seen.append(line.strip())
            if marker in line and about in line:
                hits += 1
                if hits == nth:
                    proc.send_signal(signal.SIGKILL)
                    break
    finally:
        proc.kill()
        proc.wait(timeout=30)
        driver.unlink()
    assert hits == nth, f"the run ended before {marker!r} #{nth}:\n" + "\n".join(seen) + proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL
    return seen


def assert_next_run_is_clean(root: Path, tree_b: dict) -> None:
    proc = run_generator(root, "render")
    assert proc.returncode == 0, proc.stderr
    assert leftovers(root) == []
    assert tree_bytes(root / "chart") == tree_b
    assert list((root / "docs").rglob(".*.tmp")) == []
    assert run_generator(root, "render", "--check").returncode == 0


@pytest.mark.parametrize("nth", [1, 9], ids=lambda n: f"after chart file {n}")
def test_killed_while_writing_the_new_tree_leaves_the_old_chart_whole(two_renders, nth):
    root, tree_a, tree_b = two_renders
    set_cluster(root, "virtengine-prod-b")
    run_driver_until(root, "wrote ", nth)
    assert tree_bytes(root / "chart") == tree_a, "chart/ changed before the swap"
    assert leftovers(root), "the half-written tree should be beside chart/, not in it"
    assert_next_run_is_clean(root, tree_b)


def test_killed_after_the_swap_before_cleanup_leaves_the_new_chart_whole(two_renders):
    root, tree_a, tree_b = two_renders
    set_cluster(root, "virtengine-prod-b")
    # the rmtree of the swapped-out chart (render also removes temporary folders of its own checks before that)
    run_driver_until(root, "rmtree ", about="/.chart.")
    assert tree_bytes(root / "chart") == tree_b
    assert_next_run_is_clean(root, tree_b)


def test_killed_while_replacing_docs_leaves_chart_whole_and_docs_readable(two_renders):
    root, tree_a, tree_b = two_renders
    set_cluster(root, "virtengine-prod-b")
    docs_before = tree_bytes(root / "docs")
    run_driver_until(root, f"wrote {root / 'docs'}")
    assert tree_bytes(root / "chart") == tree_b
    for name, data in tree_bytes(root / "docs").items():
        if not Path(name).name.startswith("."):
            assert data == docs_before[name]
    assert_next_run_is_clean(root, tree_b)


def test_without_renameat2_a_kill_between_the_renames_is_recovered(two_renders):
    root, tree_a, tree_b = two_renders
    set_cluster(root, "virtengine-prod-b")
    run_driver_until(root, "renamed ", 1, env={"NO_EXCHANGE": "1"})
    # chart/ was moved aside whole; nothing half-written is in its place
    assert not (root / "chart").exists()
    old = [root / name for name in leftovers(root) if name.endswith(".old")]
    assert len(old) == 1 and tree_bytes(old[0]) == tree_a
    assert_next_run_is_clean(root, tree_b)


def test_random_sigkills_never_leave_a_half_written_chart(two_renders):
    root, tree_a, tree_b = two_renders
    start = time.monotonic()
    assert run_generator(root, "render").returncode == 0
    duration = time.monotonic() - start
    rng = random.Random(7)
    outcomes = {"before the swap": 0, "after the swap": 0}
    kills = 12
    for i in range(kills):
        current = tree_bytes(root / "chart")
        # always ask for the other render, so every kill shows whether the swap happened
        target, wanted = ("virtengine-prod-b", tree_b) if current == tree_a else ("virtengine-prod", tree_a)
        set_cluster(root, target)
        proc = subprocess.Popen([sys.executable, "-m", "generator", "--root", str(root), "render"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        time.sleep(rng.uniform(0.4, 1.6) * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        chart = tree_bytes(root / "chart")
        assert chart in (tree_a, tree_b), f"kill {i}: chart/ is not one whole render"
        outcomes["after the swap" if chart == wanted else "before the swap"] += 1
    print(f"\n[figures] {kills} random SIGKILLs during render: chart/ whole every time "
          f"({outcomes['before the swap']} killed before the swap, {outcomes['after the swap']} after)")
    set_cluster(root, "virtengine-prod-b")
    assert_next_run_is_clean(root, tree_b)
