"""Synthetic source trees: the project's sources with every dashboard and
every rule group copied N-1 more times under new names.

Copies are derived from the real content, so they have its typical size:
a dashboard copy gets a new uid and title, a rule group copy a new group
name, new alert names (``<Alert>S<k>``) and new recording rule names
(``<record>_s<k>``); runbooks of copied alerts are copied with them.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from .common import ROOT

UID_LINE = re.compile(r"^(uid:\s*)([\"']?)([a-z0-9][a-z0-9-]*)\2\s*$", re.M)
TITLE_LINE = re.compile(r"^(title:\s*)([\"']?)(.*?)\2\s*$", re.M)
GROUP_LINE = re.compile(r"^(\s*-?\s*name:\s*)([\"']?)([a-z][a-z0-9_.-]*)\2\s*$", re.M)
ALERT_LINE = re.compile(r"^(\s*-?\s*alert:\s*)([\"']?)([A-Z][A-Za-z0-9]*)\2\s*$", re.M)
RECORD_LINE = re.compile(r"^(\s*-?\s*record:\s*)([\"']?)([a-z_]+:[a-z0-9_]+:[a-z0-9_]+)\2\s*$", re.M)


def copy_sources(dest: Path) -> Path:
    for name in ("templates_src", "values", "docs"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, dest / name, dirs_exist_ok=True)
    return dest


def dashboard_copy(text: str, k: int) -> str:
    suffix = f"-s{k}"

    def uid(m: re.Match) -> str:
        return f"{m.group(1)}{m.group(2)}{m.group(3)[:40 - len(suffix)]}{suffix}{m.group(2)}"

    def title(m: re.Match) -> str:
        return f"{m.group(1)}{m.group(2)}{m.group(3)} (copy {k}){m.group(2)}"
    text, n = UID_LINE.subn(uid, text, count=1)
    if n != 1:
        raise ValueError("no top-level `uid:` line")
    return TITLE_LINE.sub(title, text, count=1)


def rules_copy(text: str, k: int, runbooks: Path | None = None) -> str:
    def alert(m: re.Match) -> str:
        new = f"{m.group(3)[:40 - len(str(k)) - 1]}S{k}"
        if runbooks and (runbooks / f"{m.group(3)}.md").is_file() and not (runbooks / f"{new}.md").exists():
            shutil.copy(runbooks / f"{m.group(3)}.md", runbooks / f"{new}.md")
        return f"{m.group(1)}{m.group(2)}{new}{m.group(2)}"
    text = GROUP_LINE.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}.s{k}{m.group(2)}", text)
    text = ALERT_LINE.sub(alert, text)
    return RECORD_LINE.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}_s{k}{m.group(2)}", text)


def make_tree(dest: Path, factor: int = 1, *, extra_dashboards: tuple[str, int] | None = None) -> Path:
    """Copies the sources to ``dest`` with content multiplied by ``factor``;
    ``extra_dashboards=(uid, n)`` adds n copies of one dashboard only."""
    copy_sources(dest)
    dashboards = dest / "templates_src" / "dashboards"
    rules = dest / "templates_src" / "rules"
    runbooks = dest / "docs" / "runbooks"
    originals = sorted(dashboards.glob("*.yaml.j2"))
    rule_files = sorted(rules.glob("*.yaml.j2"))
    for k in range(1, factor):
        for path in originals:
            (dashboards / f"{path.name[:-len('.yaml.j2')]}-s{k}.yaml.j2").write_text(
                dashboard_copy(path.read_text(), k))
        for path in rule_files:
            (rules / f"{path.name[:-len('.yaml.j2')]}-s{k}.yaml.j2").write_text(
                rules_copy(path.read_text(), k, runbooks if runbooks.is_dir() else None))
    if extra_dashboards:
        uid, n = extra_dashboards
        path = dashboards / f"{uid}.yaml.j2"
        for k in range(1, n + 1):
            (dashboards / f"{uid}-x{k}.yaml.j2").write_text(dashboard_copy(path.read_text(), 1000 + k))
    return dest
