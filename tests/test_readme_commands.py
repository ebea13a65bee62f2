"""The README's commands work as written from the repository root, without an activated virtualenv.

`python -m generator` fails with ModuleNotFoundError outside the venv; the README writes
`.venv/bin/python -m generator` (created by `make tools`) or a make target. Each generator command it shows
is checked against the command's own `--help` (subcommand and every flag), run with a PATH that has no venv.
Upgrades show Helm 3's `--atomic` and Helm 4's `--rollback-on-failure`, each checked against that Helm.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest

from conftest import ROOT
from generator import tools

README = (ROOT / "README.md").read_text(encoding="utf-8")
# code spans and the lines of code blocks: where a reader copies a command from
BLOCKS = re.findall(r"```[a-z]*\n(.*?)```", README, re.S)
SPANS = re.findall(r"`([^`\n]+)`", re.sub(r"```[a-z]*\n.*?```", "", README, flags=re.S))
CODE = [line.strip() for block in BLOCKS for line in block.splitlines() if line.strip()] + SPANS
NO_VENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}


def test_no_readme_command_needs_an_activated_virtualenv():
    def bare(command: str) -> bool:
        command = re.sub(r"^(\w+=\S*\s+)*", "", command)   # leading VAR=value assignments
        return bool(re.search(r"(?<![\w/.-])python3? -m ", command) or re.match(r"pytest(\s|$)", command))
    bare = [c for c in CODE if bare(c)]
    assert bare == [], f"commands that fail outside the venv (write .venv/bin/python -m ...): {bare}"


def generator_commands() -> list[list[str]]:
    found = []
    for text in CODE:
        for m in re.finditer(r"\.venv/bin/python -m generator ([^`;&|#]*)", text):
            args = [a for a in shlex.split(m.group(1).strip()) if a]
            if args:
                found.append(args)
    return found


COMMANDS = generator_commands()


def test_the_readme_shows_every_generator_command():
    assert {args[0] for args in COMMANDS} >= {"render", "lint", "diff", "publish", "bundle", "preview"}


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a) for a in COMMANDS])
def test_each_readme_generator_command_and_its_flags_exist_outside_the_venv(args):
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "generator", args[0], "--help"],
                          capture_output=True, text=True, cwd=ROOT, env=NO_VENV, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for flag in (a.split("=")[0] for a in args[1:] if a.startswith("--")):
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", proc.stdout), f"{args[0]} has no {flag}"


@pytest.mark.parametrize("major,flag", [(3, "--atomic"), (4, "--rollback-on-failure")])
def test_the_readme_upgrade_for_each_helm_uses_the_flag_that_helm_has(major, flag):
    lines = [c for c in CODE if c.startswith("helm upgrade vemon ") and f"Helm {major}" in c]
    assert lines, f"no upgrade line for Helm {major}"
    assert all(flag in line for line in lines)
    assert f"  {flag} " in tools.run([tools.helm(major), "upgrade", "--help"]).stdout
