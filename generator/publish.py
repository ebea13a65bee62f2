"""``generator publish``: package ``chart/`` and push it to an OCI registry.

Steps, each with the real helm:

0. the project must be a git checkout whose tree is clean and committed
   (no modified, staged, untracked or ignored file under ``chart/``,
   ``values/`` or ``templates_src/``, nothing else uncommitted): a published
   version can never be replaced, so it must be one commit anyone can check
   out again (an untracked ``values/perf.yaml`` once shipped as
   ``ci/perf-values.yaml``);
1. the chart must match its sources (``render --check``): what is published
   is what ``templates_src/`` and ``values/`` say;
2. ``helm show chart oci://<registry>/<path>/<name> --version <version>``: if
   the registry already holds this version, stop. A published version is
   never overwritten; bump ``version`` in ``templates_src/chart/Chart.yaml``;
3. ``helm package`` into a temporary folder, ``helm push`` to
   ``oci://<registry>/<path>``.

Credentials never live in a file of this project: either ``helm registry
login`` was run beforehand (helm's own credential store), or
``HELM_REGISTRY_USERNAME`` / ``HELM_REGISTRY_PASSWORD`` are set, in which
case the login goes to a temporary registry config deleted afterwards.
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import tools
from .emit import OWNED_DIRS
from .errors import GeneratorError, ToolError

# what registries answer for a chart or tag they do not hold
_ABSENT = re.compile(r"not found|manifest unknown|name unknown|404", re.I)
REPO = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$")


@dataclass
class Published:
    ref: str
    version: str
    digest: str
    unclean: list[str] = None


def chart_meta(chart: Path) -> tuple[str, str]:
    import yaml
    meta = yaml.safe_load((chart / "Chart.yaml").read_text()) or {}
    return str(meta["name"]), str(meta["version"])


def _oci(registry: str) -> str:
    registry = registry.removeprefix("oci://").rstrip("/")
    if not REPO.match(registry):
        raise GeneratorError(f"registry {registry!r} is not like host[:port]/path (e.g. ghcr.io/virtengine/charts)",
                             key="--registry")
    return "oci://" + registry


def _flags(plain_http: bool, registry_config: str | None) -> list[str]:
    flags = ["--plain-http"] if plain_http else []
    if registry_config:
        flags += ["--registry-config", registry_config]
    return flags


def exists(helm: str, ref: str, version: str, flags: list[str]) -> bool:
    """Whether the registry holds ``ref`` at ``version``; other failures (unreachable, denied) raise."""
    proc = tools.run([helm, "show", "chart", ref, "--version", version, *flags], check=False, timeout=120)
    if proc.returncode == 0:
        return True
    err = (proc.stderr or proc.stdout).strip()
    if _ABSENT.search(err):
        return False
    raise ToolError(f"cannot ask {ref} for version {version}: {err}")


def _login(helm: str, ref: str, flags: list[str], config: str) -> None:
    user, password = os.environ.get("HELM_REGISTRY_USERNAME"), os.environ.get("HELM_REGISTRY_PASSWORD")
    if not (user and password):
        return
    host = ref.removeprefix("oci://").split("/", 1)[0]
    login_flags = [f for f in flags if f != "--plain-http"] + (["--insecure"] if "--plain-http" in flags else [])
    tools.run([helm, "registry", "login", host, "--username", user, "--password-stdin", *login_flags],
              input_text=password, timeout=120)


# what the chart is made of: nothing here may be untracked, even when .gitignore hides it
OWNED = ("chart", "values", "templates_src")
ALLOW_FLAG = "--allow-unclean"


def unclean(root: Path) -> list[str]:
    """Why ``root`` is not a clean, committed git tree: one line per file, empty when it is."""
    import subprocess
    git = ["git", "-C", str(root)]
    top = subprocess.run(git + ["rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if top.returncode != 0:
        return [f"{root} is not a git checkout (nothing says which commit this version is)"]
    if Path(top.stdout.strip()).resolve() != root.resolve():
        return [f"{root} is not the top of its git checkout ({top.stdout.strip()})"]
    if subprocess.run(git + ["rev-parse", "--verify", "-q", "HEAD"], capture_output=True).returncode != 0:
        return ["no commit yet"]
    status = subprocess.run(git + ["status", "--porcelain=v1", "--untracked-files=all", "--ignored=matching"],
                            capture_output=True, text=True, check=True).stdout
    problems = []
    kinds = {"??": "untracked", "!!": "ignored"}
    for line in status.splitlines():
        code, path = line[:2], line[3:].strip('"')
        if code == "!!" and not path.split("/", 1)[0] in OWNED:
            continue   # .venv/, caches: not part of the package
        kind = kinds.get(code) or ("staged, not committed" if code[1] == " " else "modified, not committed")
        problems.append((_generated(path), f"{kind}: {path}"))
    # the sources first (values/, templates_src/, ...): a long list is cut after 20, and the files render
    # writes from them (chart/, integrations/) say less about what to commit
    return [line for _, line in sorted(problems)]


def _generated(path: str) -> bool:
    return any(path == d or path.startswith(d + "/") for d in OWNED_DIRS)


def publish(root: Path, registry: str, *, helm_major: int = 3, plain_http: bool = False,
            allow_unclean: bool = False, warn=None) -> Published:
    chart = root / "chart"
    if not (chart / "Chart.yaml").is_file():
        raise GeneratorError("no chart/Chart.yaml; run `python -m generator render` first")
    problems = unclean(root)
    if problems and not allow_unclean:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise GeneratorError("publish needs a clean, committed tree (a published version is never replaced, so it "
                             "must be one commit):\n  " + "\n  ".join(shown)
                             + "\ncommit or remove these files (git status), render, commit, and publish again; "
                             f"in an emergency {ALLOW_FLAG} publishes anyway")
    from . import emit
    from .build import build
    try:
        emit.check(root, build(root).files, "python -m generator render")
    except GeneratorError as e:
        if not allow_unclean:
            raise
        problems.append(f"chart/ differs from its sources: {str(e).splitlines()[0]}")
    if problems and warn:
        warn(problems)
    name, version = chart_meta(chart)
    base = _oci(registry)
    ref = f"{base}/{name}"
    helm = tools.helm(helm_major)
    with tempfile.TemporaryDirectory(prefix="vemon-publish-") as tmp:
        config = None
        if os.environ.get("HELM_REGISTRY_USERNAME"):
            config = str(Path(tmp) / "registry.json")
        flags = _flags(plain_http, config)
        if config:
            _login(helm, ref, flags, config)
        if exists(helm, ref, version, flags):
            raise GeneratorError(f"{ref} version {version} is already published; a released version is never "
                                 f"overwritten: bump version in templates_src/chart/Chart.yaml, add a CHANGELOG.md "
                                 f"entry, render and publish again", file="templates_src/chart/Chart.yaml",
                                 key="version")
        out = Path(tmp) / "pkg"
        out.mkdir()
        tools.run([helm, "package", str(chart), "--destination", str(out)], timeout=120)
        package = next(out.glob("*.tgz"))
        proc = tools.run([helm, "push", str(package), base, *flags], timeout=300)
    text = proc.stdout + proc.stderr
    digest = (re.search(r"Digest:\s*(\S+)", text) or re.search(r"(sha256:[0-9a-f]{64})", text))
    return Published(ref=ref, version=version, digest=digest.group(1) if digest else "", unclean=problems)


def changelog_items(root: Path, version: str) -> list[str]:
    """The items of ``CHANGELOG.md``'s section for ``version`` (``- kind: description`` lines)."""
    path = root / "CHANGELOG.md"
    if not path.is_file():
        return []
    items, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            inside = line[3:].strip().split()[0] == version
        elif inside and line.startswith("- "):
            items.append(line[2:].strip())
    return items


def check_changelog(ctx) -> None:
    """Lint check: the chart's version has a CHANGELOG.md section equal to its artifacthub.io/changes."""
    import yaml
    from .errors import ValidationError
    meta = yaml.safe_load((ctx.chart / "Chart.yaml").read_text()) or {}
    version = str(meta.get("version"))
    items = changelog_items(ctx.root, version)
    if not items:
        raise ValidationError(f"CHANGELOG.md has no '## {version}' section with '- kind: what changed' items; "
                              "say what this version changes", file="CHANGELOG.md")
    raw = (meta.get("annotations") or {}).get("artifacthub.io/changes", "")
    changes = yaml.safe_load(raw) if raw else []
    annotated = [f"{c.get('kind')}: {c.get('description')}" for c in changes or []]
    if annotated != items:
        missing = sorted(set(items) ^ set(annotated))
        raise ValidationError(f"artifacthub.io/changes differs from CHANGELOG.md's {version} section: "
                              + "; ".join(missing[:3]), file="templates_src/chart/Chart.yaml",
                              key="annotations.artifacthub.io/changes")
    ctx.notes.append(f"CHANGELOG.md and artifacthub.io/changes agree on {version}: {len(items)} items")
