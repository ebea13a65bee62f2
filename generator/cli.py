"""Command line: ``python -m generator {render,lint,preview,publish,diff,bundle}``.

Exit codes: 0 ok, 1 bad input or a failed check (a message, no traceback),
2 usage error.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import emit
from .errors import GeneratorError

FIX = "python -m generator render"


def _root(args) -> Path:
    return Path(args.root).resolve()


def cmd_render(args) -> int:
    if args.no_cache:
        from . import toolcache
        toolcache.disable()
    from .build import build
    root = _root(args)
    out = build(root)
    if args.check:
        emit.check(root, out.files, FIX)
        print(f"up to date: {len(out.files)} generated files match their sources")
        return 0
    emit.write(root, out.files)
    for line in out.report:
        print(line)
    print(f"rendered {len(out.files)} files into chart/ and docs/ "
          f"({len(out.shared.get('dashboards', {}))} dashboards, {len(out.shared.get('alerts', {}))} alerts, "
          f"environments: {', '.join(sorted(out.merged_values))})")
    return 0


def cmd_lint(args) -> int:
    from . import lint
    ctx = lint.LintContext(root=_root(args), base=args.check_version_increment,
                           helm_majors=tuple(args.helm) if args.helm else (3, 4))
    for note in lint.run(ctx, only=args.only):
        print(f"ok: {note}")
    return 0


def cmd_publish(args) -> int:
    from . import publish

    def warn(problems: list[str]) -> None:
        bar = "!" * 78
        print(f"{bar}\nWARNING: {publish.ALLOW_FLAG}: publishing a tree that is NOT clean and committed.\n"
              "This version can never be replaced, and no commit holds what it contains:\n  "
              + "\n  ".join(problems) + f"\n{bar}", file=sys.stderr)

    done = publish.publish(_root(args), args.registry, helm_major=args.helm, plain_http=args.plain_http,
                           allow_unclean=args.allow_unclean, warn=warn)
    print(f"pushed {done.ref}:{done.version} {done.digest}".rstrip())
    if done.unclean:
        print(f"WARNING: {done.ref}:{done.version} was published from an unclean tree "
              f"({len(done.unclean)} files; see above)", file=sys.stderr)
    return 0


def cmd_diff(args) -> int:
    from . import diffenv
    text = diffenv.run(_root(args), args.envs, base=args.base, helm_major=args.helm, context=args.context,
                      group=not args.no_group)
    print(text, end="")
    return 0


def cmd_bundle(args) -> int:
    from . import bundle
    files = bundle.write(_root(args), args.env, Path(args.out), helm_major=args.helm, ha=args.ha)
    print(f"wrote the {args.env} local bundle{' (high availability)' if args.ha else ''}: {len(files)} files in "
          f"{args.out}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m generator",
        description="Renders the VirtEngine observability Helm chart (chart/) from templates_src/ and values/, "
                    "and lints it.")
    p.add_argument("--root", default=".", help="project root holding templates_src/ and values/ (default: .)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    r = sub.add_parser("render", help="render chart/ and docs/ from templates_src/ and values/")
    r.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 with a short diff when chart/ is out of date")
    r.add_argument("--no-cache", action="store_true",
                   help="ask the PromQL grammar and promtool about every expression and rule group again, and "
                        "compile every template (by default their verdicts are cached in .cache/ beside the "
                        "generator, or $VEMON_CACHE_DIR; VEMON_NO_CACHE=1 does the same as this flag)")
    r.set_defaults(func=cmd_render)
    lint_p = sub.add_parser("lint", help="the checks of chart-testing's ct lint, plus dashboard and rule lint")
    lint_p.add_argument("--check-version-increment", metavar="BASE", default=None,
                        help="fail when chart/ changed since git ref BASE without a version bump")
    lint_p.add_argument("--helm", type=int, action="append", choices=(3, 4),
                        help="helm major version(s) to lint with (default: both)")
    lint_p.add_argument("--only", action="append", metavar="CHECK", help="run only this check (repeatable)")
    lint_p.set_defaults(func=cmd_lint)
    from .preview import command as preview_command
    preview_command.add_parser(sub)
    pub = sub.add_parser("publish", help="helm package chart/ and push it to an OCI registry, never overwriting "
                                        "a published version")
    pub.add_argument("--registry", required=True, metavar="HOST[:PORT]/PATH",
                     help="where to push, e.g. ghcr.io/virtengine/charts (oci:// optional)")
    pub.add_argument("--helm", type=int, choices=(3, 4), default=3, help="helm major version to use (default 3)")
    pub.add_argument("--plain-http", action="store_true", help="talk http to the registry (a local test registry)")
    pub.add_argument("--allow-unclean", action="store_true",
                     help="EMERGENCIES ONLY: publish even when the git tree is not clean and committed or chart/ "
                          "differs from its sources (prints a warning naming every such file)")
    pub.set_defaults(func=cmd_publish)
    d = sub.add_parser("diff", help="what an environment change does, as a diff of rendered manifests: "
                                    "two environments, or git BASE against the working tree for one")
    d.add_argument("envs", nargs="+", metavar="ENV", help="one environment (with --base) or two to compare")
    d.add_argument("--base", metavar="GIT_REF", help="compare ENV rendered from this ref (e.g. main) with the "
                                                     "working tree")
    d.add_argument("--helm", type=int, choices=(3, 4), default=3, help="helm major version to render with (default 3)")
    d.add_argument("--context", type=int, default=3, help="lines of context (default 3)")
    d.add_argument("--no-group", action="store_true",
                   help="show every change in place (by default a change repeated in 3 or more places, such as "
                        "the environment label, is listed once at the top with where it occurs)")
    d.set_defaults(func=cmd_diff)
    b = sub.add_parser("bundle", help="the local docker-compose stack (Prometheus, Alertmanager, Grafana, Loki, "
                                      "Jaeger) for one environment")
    b.add_argument("--env", required=True, help="environment whose values/<env>.yaml the bundle follows")
    b.add_argument("--out", required=True, help="folder to write (replaced whole), e.g. deploy/observability")
    b.add_argument("--helm", type=int, choices=(3, 4), default=3, help="helm major version to render with (default 3)")
    b.add_argument("--ha", action="store_true", help="two Prometheus replicas and three clustered Alertmanager peers "
                                                     "(replica label dropped before Alertmanager)")
    b.set_defaults(func=cmd_bundle)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except GeneratorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        # a folder the user named cannot be read or written (no such parent, read-only, not a folder)
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
