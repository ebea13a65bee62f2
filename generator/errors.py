"""The one exception hierarchy of the generator.

Every error a user can cause (bad values, a broken template, content that
fails validation, a missing tool) is a ``GeneratorError`` carrying where it
happened: a file, a line and/or a key path. The command line prints
``str(error)`` and exits 1; it never shows a traceback for these.
"""
from __future__ import annotations


class GeneratorError(Exception):
    """A problem in the user's sources, values or environment."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.key = key

    def location(self) -> str:
        where = ""
        if self.file:
            where = str(self.file)
            if self.line:
                where += f":{self.line}"
        if self.key:
            where = f"{where}: {self.key}" if where else self.key
        return where

    def __str__(self) -> str:
        where = self.location()
        return f"{where}: {self.message}" if where else self.message


class ValuesError(GeneratorError):
    """A values file is unreadable, mistyped, or misses a required setting."""


class TemplateError(GeneratorError):
    """A template failed to render or rendered text that does not parse."""


class ValidationError(GeneratorError):
    """Rendered content breaks a rule (schema, lint, catalog, budget)."""


class ToolError(GeneratorError):
    """An external tool (helm, promtool, ...) is missing or failed."""


class StaleError(GeneratorError):
    """``render --check`` found chart/ out of date with its sources."""
