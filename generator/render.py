"""Renders Jinja2 templates from ``templates_src/`` and parses their output.

Templates use ``<< expr >>``, ``<% statement %>`` and ``<# comment #>`` so
that the ``{{ }}`` of Helm, Prometheus annotations, Alertmanager templates
and Grafana legends pass through untouched, with no escaping. Undefined
names fail (``StrictUndefined``). The text a template produces is parsed
back into data here; an error names the template and its line, or the line
of the rendered output that does not parse.
"""
from __future__ import annotations

import json
import os
import pickle
import traceback
from pathlib import Path
from typing import Any

import jinja2

from . import yamlio
from .errors import GeneratorError, TemplateError

DELIMITERS = dict(
    block_start_string="<%", block_end_string="%>",
    variable_start_string="<<", variable_end_string=">>",
    comment_start_string="<#", comment_end_string="#>",
)


def _json_default(value):
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _dumps(value, **kwargs):
    return json.dumps(value, default=_json_default, **kwargs)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates cached in ``.cache/jinja`` beside the generator (git-ignored; ``$VEMON_CACHE_DIR/jinja``
    when that is set).

    Jinja keys each entry by the template's name and checks its source
    checksum, so an edited template is always recompiled; the cache only
    saves compiling unchanged templates again. ``VEMON_NO_CACHE=1`` turns it off.
    """
    from . import toolcache
    if not toolcache.enabled():
        return None
    folder = toolcache.cache_root() / "jinja"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))


class Renderer:
    def __init__(self, src_dir: Path, display_root: Path | None = None,
                 globals_: dict | None = None) -> None:
        self.src_dir = src_dir
        self.display_root = display_root or src_dir.parent
        self._memo = None
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(src_dir)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            bytecode_cache=_bytecode_cache(),
            **DELIMITERS,
        )
        self.env.filters["fromjson"] = json.loads   # a macro's JSON output back into data
        self.env.globals.update(globals_ or {})
        # tojson of a missing value names it ("parameter 'title' was not provided") instead of a TypeError
        self.env.policies["json.dumps_function"] = _dumps

    def display(self, name: str) -> str:
        try:
            return str((self.src_dir / name).resolve().relative_to(self.display_root.resolve()))
        except ValueError:
            return str(self.src_dir / name)

    def render_text(self, name: str, context: dict | None = None) -> str:
        display = self.display(name)
        try:
            template = self.env.get_template(name)
            return template.render(**(context or {}))
        except jinja2.TemplateSyntaxError as e:
            where = self.display(e.name) if e.name else display
            raise TemplateError(f"template syntax error: {e.message}", file=where, line=e.lineno) from None
        except jinja2.TemplateNotFound as e:
            raise TemplateError(f"template not found: {e.name}", file=display) from None
        except UnicodeDecodeError as e:
            line = e.object[: e.start].count(b"\n") + 1
            raise TemplateError(f"not valid UTF-8 (byte {e.start}: {e.object[e.start:e.start + 1]!r}); "
                                "save the file as UTF-8", file=display, line=line) from None
        except GeneratorError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure inside a template is the template's
            file, line = self._template_frame(e, display)
            message = str(e) if isinstance(e, jinja2.UndefinedError) else f"{type(e).__name__}: {e}"
            if isinstance(e, TypeError) and "macro" in str(e):
                message = f"macro called with wrong arguments: {e}"
            raise TemplateError(message, file=file, line=line) from None

    def _template_frame(self, error: BaseException, display: str) -> tuple[str, int | None]:
        src = str(self.src_dir.resolve())
        found = (display, None)
        for frame in traceback.extract_tb(error.__traceback__):
            if frame.filename and str(Path(frame.filename).resolve()).startswith(src):
                found = (self.display(str(Path(frame.filename).resolve().relative_to(src))), frame.lineno)
        return found

    def _loads_yaml(self, text: str, display: str) -> Any:
        """``yamlio.loads_yaml``, a pure function of the text: the data of a rendered output read before
        (the same text, the same generator code) comes from the cache (``toolcache.Memo``) as a pickle, the
        same objects (LineDicts with their lines, shared aliases); a text that does not parse is never kept."""
        if self._memo is None:
            from . import toolcache
            self._memo = toolcache.Memo("yaml")
        return self._memo.compute((text,), lambda: yamlio.loads_yaml(text, display),
                                  lambda data: pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL), pickle.loads)

    def render_data(self, name: str, context: dict | None = None) -> Any:
        """Renders ``name`` and parses it as YAML (``.yaml.j2``) or JSON (``.json.j2``)."""
        text = self.render_text(name, context)
        display = self.display(name)
        try:
            if name.endswith(".json.j2"):
                return yamlio.loads_json(text, display)
            return self._loads_yaml(text, display)
        except GeneratorError as e:
            excerpt = ""
            if e.line:
                lines = text.splitlines()
                if 0 < e.line <= len(lines):
                    excerpt = f"\n  rendered line {e.line}: {lines[e.line - 1].strip()[:160]}"
            raise TemplateError(f"rendered output is not valid: {e.message}{excerpt}",
                                file=display, line=None) from None
