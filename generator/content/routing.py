"""Alertmanager: notification templates shipped as chart files.

The routing tree and receivers are rendered by the chart from values
(``templates/alertmanager/``); the Go templates that format PagerDuty and
Opsgenie notifications live in ``templates_src/alertmanager/*.tmpl`` and are
copied as data, so Helm never parses their ``{{ }}``.
"""
from __future__ import annotations

from ..errors import ValidationError


def build(src, out) -> None:
    folder = src.templates / "alertmanager"
    for path in sorted(folder.glob("*.tmpl")):
        text = path.read_text(encoding="utf-8")
        if "{{ define" not in text and "{{define" not in text and "{{- define" not in text:
            raise ValidationError("an Alertmanager template file defines named templates ({{ define \"...\" }})",
                                  file=str(path.relative_to(src.root)))
        out.add(f"chart/files/alertmanager/{path.name}", text)
