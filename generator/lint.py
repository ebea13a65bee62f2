"""``generator lint``: the checks chart-testing's ``ct lint`` performs, and ours.

ct cannot be installed here, so its checks are done with the same tools:
Chart.yaml against ct's yamale schema, yamllint with ct's configuration on
Chart.yaml, values.yaml and the ci values, maintainers present, the version
bump against a base branch when asked, and ``helm lint --strict`` once per
``chart/ci/*-values.yaml`` with Helm 3 and with Helm 4. Where ``ct`` is on
PATH, ``ct lint --config ct.yaml`` runs too. Content checks (dashboards,
rules) are registered in ``CHECKS`` by their modules.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import alertdocs, budget, dashlint, promqlcheck, publish, rulelint, secrets, tools
from .errors import GeneratorError, ValidationError

LINTDATA = Path(__file__).parent / "lintdata"


@dataclass
class LintContext:
    root: Path
    base: str | None = None          # git ref for the version-bump check
    helm_majors: tuple[int, ...] = (3, 4)
    notes: list[str] = field(default_factory=list)

    @property
    def chart(self) -> Path:
        return self.root / "chart"

    def ci_values(self) -> list[Path]:
        return sorted((self.chart / "ci").glob("*-values.yaml"))


def check_chart_yaml(ctx: LintContext) -> None:
    import yamale
    schema = yamale.make_schema(str(LINTDATA / "chart_schema.yaml"))
    data = yamale.make_data(str(ctx.chart / "Chart.yaml"))
    try:
        yamale.validate(schema, data)
    except yamale.YamaleError as e:
        problems = "; ".join(err for result in e.results for err in result.errors)
        raise ValidationError(f"Chart.yaml does not match chart-testing's schema: {problems}",
                              file="chart/Chart.yaml") from None
    ctx.notes.append("Chart.yaml matches chart-testing's schema (yamale)")


def check_yamllint(ctx: LintContext) -> None:
    from yamllint import linter
    from yamllint.config import YamlLintConfig
    conf = YamlLintConfig(file=str(LINTDATA / "lintconf.yaml"))
    files = [ctx.chart / "Chart.yaml", ctx.chart / "values.yaml", *ctx.ci_values()]
    problems = []
    for path in files:
        for p in linter.run(path.read_text(encoding="utf-8"), conf, str(path)):
            if p.level == "error":
                problems.append(f"{path.relative_to(ctx.root)}:{p.line}:{p.column}: {p.desc} ({p.rule})")
    if problems:
        raise ValidationError("yamllint (chart-testing's configuration):\n  " + "\n  ".join(problems))
    ctx.notes.append(f"yamllint clean: {len(files)} files")


def _chart_version(text: str) -> str:
    import yaml
    return str((yaml.safe_load(text) or {}).get("version", ""))


def _semver_key(v: str) -> tuple:
    core = v.split("-", 1)[0].split("+", 1)[0]
    try:
        return tuple(int(x) for x in core.split(".")) + ((1,) if "-" not in v else (0,))
    except ValueError:
        return (0,)


def check_version_increment(ctx: LintContext) -> None:
    if not ctx.base:
        return
    git = ["git", "-C", str(ctx.root)]
    changed = subprocess.run(git + ["diff", "--name-only", ctx.base, "--", "chart"], capture_output=True, text=True)
    if changed.returncode != 0:
        raise ValidationError(f"cannot compare with {ctx.base!r}: {changed.stderr.strip()}")
    untracked = subprocess.run(git + ["ls-files", "--others", "--exclude-standard", "--", "chart"],
                               capture_output=True, text=True).stdout
    if not (changed.stdout.strip() or untracked.strip()):
        ctx.notes.append(f"chart unchanged since {ctx.base}: no version bump needed")
        return
    old = subprocess.run(git + ["show", f"{ctx.base}:chart/Chart.yaml"], capture_output=True, text=True)
    if old.returncode != 0:
        ctx.notes.append(f"no chart on {ctx.base}: version check skipped")
        return
    before = _chart_version(old.stdout)
    now = _chart_version((ctx.chart / "Chart.yaml").read_text())
    if _semver_key(now) <= _semver_key(before):
        raise ValidationError(f"chart/ changed since {ctx.base} but its version did not increase "
                              f"({before} -> {now}); bump version in templates_src/chart/Chart.yaml",
                              file="templates_src/chart/Chart.yaml", key="version")
    ctx.notes.append(f"version bumped {before} -> {now}")


def check_helm_lint(ctx: LintContext) -> None:
    ci = ctx.ci_values()
    if not ci:
        raise ValidationError("no chart/ci/*-values.yaml to lint with; render first")
    for major in ctx.helm_majors:
        helm = tools.helm(major)
        for values in ci:
            proc = tools.run([helm, "lint", "--strict", str(ctx.chart), "-f", str(values)], check=False)
            if proc.returncode != 0:
                out = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines()
                                if "[ERROR]" in line or "[WARNING]" in line or "Error" in line)
                raise ValidationError(f"helm {major} lint --strict with {values.relative_to(ctx.root)} failed:\n{out}")
        ctx.notes.append(f"helm {major} lint --strict: {len(ci)} values files")


def check_ct(ctx: LintContext) -> None:
    ct = shutil.which("ct")
    if not ct:
        ctx.notes.append("ct not on PATH: its checks ran through yamale, yamllint and helm lint above")
        return
    tools.run([ct, "lint", "--config", str(ctx.root / "ct.yaml")], cwd=ctx.root)
    ctx.notes.append("ct lint passed")


# name -> check; content modules append their own (see dashboards and rules lint)
CHECKS: list[tuple[str, Callable[[LintContext], None]]] = [
    ("chart-yaml-schema", check_chart_yaml),
    ("runbooks", alertdocs.check_runbooks),
    ("promtool-cases", alertdocs.check_promtool_cases),
    ("yamllint", check_yamllint),
    ("version-increment", check_version_increment),
    ("helm-lint", check_helm_lint),
    ("ct", check_ct),
    ("size-budget", budget.check),
    ("rules", rulelint.check),
    ("secrets", secrets.lint_check),
    ("changelog", publish.check_changelog),
    ("dashboards", dashlint.lint_check),
    ("promql", promqlcheck.lint_check),
]


def run(ctx: LintContext, only: list[str] | None = None) -> list[str]:
    if not (ctx.chart / "Chart.yaml").is_file():
        raise GeneratorError("no chart/Chart.yaml; run `python -m generator render` first")
    unknown = sorted(set(only or ()) - {name for name, _ in CHECKS})
    if unknown:
        raise GeneratorError(f"--only: unknown check {', '.join(map(repr, unknown))}; "
                             f"allowed: {', '.join(name for name, _ in CHECKS)}")
    for name, check in CHECKS:
        if only and name not in only:
            continue
        check(ctx)
    return ctx.notes
