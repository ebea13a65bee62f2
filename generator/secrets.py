"""Secrets lint: no key-shaped string in ``values/`` or in ``chart/``.

Receivers read their keys from mounted Secret files (``routing_key_file``,
``api_key_file``); a key pasted into a values file would be rendered into
the chart, committed, and shown by ``helm get values`` to anyone who can
read the release. ``render`` refuses such a file before anything else can
print its values, and ``lint`` refuses one on disk. What is looked for:

* PagerDuty integration/routing keys: 32 letters and digits (both present);
* Opsgenie API keys: UUIDs;
* bearer tokens (``Bearer <token>``) and the value of any ``Authorization``
  header or setting;
* other well-known token shapes (JWT, AWS access key ids, Slack, GitHub,
  Grafana service-account tokens, private key blocks);
* any literal value under a key that only ever holds a secret (password,
  api_key, routing_key, service_key, token, client_secret, credentials);
* a high-entropy value (16+ characters, letters and digits, no spaces, not a
  path or URL) under a key named like key/token/secret/password/credential.

A finding names the file, the line and the key path; the value itself is
never printed (only its kind and length). A line holding
``not-a-secret`` is skipped, for documented examples.
"""
from __future__ import annotations

import bisect
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from . import yamlio
from .errors import GeneratorError, ValidationError

ALLOW_MARK = "not-a-secret"

# (kind, pattern of the secret itself) -- found anywhere in a text file
PATTERNS: list[tuple[str, re.Pattern]] = [
    ("private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("bearer token", re.compile(r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{16,}=*)")),
    ("Authorization header value", re.compile(
        r"(?i)\bauthorization\b[\"']?\s*[:=]\s*[\"']?((?:basic|bearer|token|geniekey)\s+)?([A-Za-z0-9\-._~+/=]{12,})")),
    ("JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("Grafana service account token", re.compile(r"\bglsa_[A-Za-z0-9]{32}_[0-9a-f]{8}\b")),
    ("Opsgenie API key (UUID)", re.compile(
        r"(?<![0-9A-Za-z-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![0-9A-Za-z-])")),
    ("PagerDuty routing key", re.compile(r"(?<![0-9A-Za-z_+/=-])(?=[a-zA-Z]*[0-9])(?=[0-9]*[a-zA-Z])"
                                         r"[0-9A-Za-z]{32}(?![0-9A-Za-z_+/=-])")),
]
# keys whose every literal value is a secret, however it looks
ALWAYS_SECRET = re.compile(r"(?i)^(password|passwd|passphrase|api_?key|routing_?key|service_?key|integration_?key|"
                           r"(auth_|bearer_|access_|api_)?token|client_?secret|secret_?key_?value|credentials)$")
SECRET_KEY_NAME = re.compile(r"(?i)(key|token|secret|passw(or)?d|passphrase|credential|auth)")
NOT_A_VALUE = re.compile(r"^(/|\./|https?://|\{\{|\$\{|\$\(|<)")
_KEY_ON_LINE = re.compile(r"^\s*(?:-\s+)?[\"']?([A-Za-z_][A-Za-z0-9_.-]*)[\"']?\s*:")
_KEY_IN_JSON = re.compile(r"\"([A-Za-z_][A-Za-z0-9_.-]*)\"\s*:\s*\"[^\"]*$")
TEXT_SUFFIXES = (".yaml", ".yml", ".json", ".tpl", ".txt", ".tmpl", ".md", ".j2", ".helmignore", "")


@dataclass(frozen=True)
class Finding:
    file: str
    line: int | None
    key: str | None
    kind: str
    length: int

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "") + (f": {self.key}" if self.key else "")
        return f"{where}: {self.kind} ({self.length} characters, value masked)"


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    if not value:
        return 0.0
    counts: dict[str, int] = {}
    for ch in value:
        counts[ch] = counts.get(ch, 0) + 1
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())


def looks_like_token(value: str) -> bool:
    """A value under a secret-named key that is a token rather than a name, path or reference."""
    value = value.strip().strip("\"'")
    if len(value) < 16 or any(ch.isspace() for ch in value) or NOT_A_VALUE.match(value):
        return False
    if not (re.search(r"[0-9]", value) and re.search(r"[A-Za-z]", value)):
        return False
    if re.fullmatch(r"[a-z0-9]+([.-][a-z0-9]+)*\.(ya?ml|json|tmpl|txt|pem|crt|key)", value):
        return False  # a file name such as alertmanager.yaml
    return entropy(value) >= 3.3


def _secret_name(key: str | None) -> bool:
    if not key:
        return False
    last = key.rsplit(".", 1)[-1]
    if re.search(r"(?i)(file|path|name|ref|selector|enabled)$", last):
        return False
    return bool(SECRET_KEY_NAME.search(last))


# Prefilters for ``_candidate_lines``: each finds, in the whole text, a superset of where its pattern can match.
# Literals a match must contain (case-sensitive), and ones the case-insensitive patterns must contain, looked
# for in the text lower-cased after folding the only non-ASCII characters that Python's case-insensitive
# matching takes for these ASCII letters (dotted/dotless i, long s, Kelvin sign).
_LITERALS = ("AKIA", "ASIA", "xox", "glsa_")
_FOLDED_LITERALS = ("bearer", "authorization", "key", "token", "secret", "passw", "passphrase", "credential",
                    "auth")
_FOLD = {0x130: "i", 0x131: "i", 0x17F: "s", 0x212A: "k"}
_PREFILTERS = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ"),
    re.compile(r"gh[pousr]_"),
    re.compile(r"-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"),
    re.compile(r"[0-9A-Za-z]{32}"),
)
_CASELESS = (PATTERNS[1][1], PATTERNS[2][1], SECRET_KEY_NAME)  # bearer, Authorization, key names


def _candidate_lines(lines: list[str], keys: dict[int, str] | None) -> list[int]:
    """Line numbers (1-based, ascending) where ``scan_text`` can find something; a superset.

    The search runs once over the whole text (lines joined by newlines) instead of every pattern on
    every line: each prefilter finds a superset of its pattern's matches (a literal every match
    holds, or the pattern without its look-arounds), and every line a prefilter match touches is a
    candidate. A match a line holds on its own is found in the joined text, or overlapped by another
    match of the same prefilter, so no finding is lost (tests/test_secrets.py). The key checks need
    a secret-named key: the line's own key (a substring of the line) or its key path from ``keys``.
    """
    joined = "\n".join(lines)
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    spans: list[tuple[int, int]] = []

    def literal(text: str, word: str) -> None:
        i = text.find(word)
        while i >= 0:
            spans.append((i, i + len(word)))
            i = text.find(word, i + 1)

    for word in _LITERALS:
        literal(joined, word)
    folded = joined.translate(_FOLD).lower()
    if len(folded) == len(joined):
        for word in _FOLDED_LITERALS:
            literal(folded, word)
    else:  # cannot happen with today's Unicode tables; the patterns themselves then
        spans.extend(m.span() for p in _CASELESS for m in p.finditer(joined))
    spans.extend(m.span() for p in _PREFILTERS for m in p.finditer(joined))
    found: set[int] = set()
    for begin, end in spans:
        first = bisect.bisect_right(starts, begin)
        found.update(range(first, bisect.bisect_right(starts, max(end - 1, begin)) + 1))
    for number, key in (keys or {}).items():
        if SECRET_KEY_NAME.search(key.rsplit(".", 1)[-1]):
            found.add(number)
    return sorted(n for n in found if 1 <= n <= len(lines))


def scan_text(text: str, file: str, keys: dict[int, str] | None = None) -> list[Finding]:
    """Findings in one text; ``keys`` maps line numbers to key paths where they are known."""
    findings: list[Finding] = []
    lines = text.splitlines()
    for number in _candidate_lines(lines, keys):
        line = lines[number - 1]
        if ALLOW_MARK in line:
            continue
        key = (keys or {}).get(number) or _line_key(line) or _list_key(lines, number, keys)
        for kind, pattern in PATTERNS:
            m = pattern.search(line)
            if m:
                secret = m.group(m.lastindex) if m.lastindex else m.group(0)
                if kind == "Authorization header value" and NOT_A_VALUE.match(secret):
                    continue
                findings.append(Finding(file, number, key, kind, len(secret)))
                break
        else:
            value = _line_value(line)
            literal = (value or "").strip().strip("\"'")
            if value is not None and key and ALWAYS_SECRET.match(key.rsplit(".", 1)[-1]) and literal \
                    and literal not in ("null", "~", "{}", "[]") and not NOT_A_VALUE.match(literal):
                findings.append(Finding(file, number, key, f"a literal value under {key.rsplit('.', 1)[-1]!r}",
                                        len(literal)))
            elif value is not None and _secret_name(key) and looks_like_token(value):
                findings.append(Finding(file, number, key, f"high-entropy value under {key.rsplit('.', 1)[-1]!r}",
                                        len(value.strip().strip("\"'"))))
    return findings


def _list_key(lines: list[str], number: int, keys: dict[int, str] | None) -> str | None:
    """The key of the block list a ``- item`` line belongs to: the nearest key above it, less indented."""
    line = lines[number - 1]
    if not keys or not re.match(r"^\s*- ", line):
        return None
    indent = len(line) - len(line.lstrip())
    for above in range(number - 1, 0, -1):
        text = lines[above - 1]
        if text.strip() and not text.lstrip().startswith(("#", "- ")) and len(text) - len(text.lstrip()) <= indent:
            return keys.get(above)
    return None


def _line_key(line: str) -> str | None:
    m = _KEY_ON_LINE.match(line) or _KEY_IN_JSON.search(line)
    return m.group(1) if m else None


def _line_value(line: str) -> str | None:
    m = re.match(r"^\s*(?:-\s+)?[\"']?[A-Za-z_][A-Za-z0-9_.-]*[\"']?\s*:\s*(.+?)\s*,?\s*$", line)
    if not m:
        return None
    value = m.group(1)
    if " #" in value:
        value = value.split(" #", 1)[0]
    return value.strip()


def _key_lines(data: Any) -> dict[int, str]:
    """Line -> dotted key path, from data read by ``yamlio`` (LineDicts remember their lines)."""
    lines: dict[int, str] = {}

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, yamlio.LineDict):
            for k, v in node.items():
                if k in node.lines:
                    lines[node.lines[k]] = ".".join(path + [str(k)])
                walk(v, path + [str(k)])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + [str(i)])
    walk(data, [])
    return lines


def _yaml_keys(text: str, file: str) -> dict[int, str]:
    """Line -> dotted key path of the values on that line (for YAML files that parse)."""
    try:
        return _key_lines(yamlio.loads_yaml(text, file))
    except GeneratorError:
        return {}


def scan_file(path: Path, display: str) -> list[Finding]:
    raw = path.read_bytes()
    if b"\0" in raw[:4096]:
        return []
    text = raw.decode("utf-8", errors="replace")
    keys = _yaml_keys(text, display) if display.endswith((".yaml", ".yml")) and "/templates/" not in display else None
    return scan_text(text, display, keys)


def _raise(findings: list[Finding], where: str) -> None:
    if findings:
        shown = findings[:20]
        more = f"\n  ... and {len(findings) - len(shown)} more" if len(findings) > len(shown) else ""
        raise ValidationError(
            f"key-shaped strings in {where}; secrets belong in a Kubernetes Secret mounted as a file "
            f"(routing_key_file, api_key_file, credentials_file), never in values or the chart:\n  "
            + "\n  ".join(map(str, shown)) + more)


def check_values(src) -> None:
    """Runs right after the values are read, before anything else can echo one of them in a message."""
    findings = []
    loaded = {src.defaults.file: (src.defaults.text, src.defaults.data)}
    loaded.update({env.file: (env.text, env.data) for env in src.envs.values()})
    for path in sorted((src.root / "values").glob("*.yaml")):
        display = str(path.relative_to(src.root))
        if display in loaded:
            text, data = loaded[display]
            findings += scan_text(text, display, _key_lines(data))
        else:
            findings += scan_file(path, display)
    _raise(findings, "values/")


def scan_generated(rel: str, data: bytes) -> list[Finding]:
    """Findings in one generated file (``rel``: its path in the file map)."""
    if b"\0" in data[:4096]:
        return []
    text = data.decode("utf-8", errors="replace")
    keys = _yaml_keys(text, rel) if rel.endswith((".yaml", ".yml")) and "/templates/" not in rel else None
    return scan_text(text, rel, keys)


def check_generated(files: dict[str, bytes]) -> None:
    """The rendered file map (``chart/``, ``docs/``) before it is written.

    ``scan_generated`` is a pure function of a file's path and bytes: its findings are kept in the cache
    (``toolcache.Memo``, keyed by path, bytes and the generator's code), so a file unchanged since an
    earlier render is not read again; a changed file, or a changed generator, is scanned."""
    from . import toolcache
    memo = toolcache.Memo("secrets")
    findings = []
    for rel, data in sorted(files.items()):
        findings += memo.compute(
            (rel, data), lambda: scan_generated(rel, data),
            lambda found: json.dumps([[f.file, f.line, f.key, f.kind, f.length] for f in found]).encode(),
            lambda stored: [Finding(*f) for f in json.loads(stored)])
    _raise(findings, "the generated chart")


def scan_tree(root: Path, folders: Iterable[str] = ("values", "chart")) -> list[Finding]:
    findings = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES:
                findings += scan_file(path, str(path.relative_to(root)))
    return findings


def lint_check(ctx) -> None:
    """``generator lint`` check ``secrets``: values/ and chart/ on disk."""
    findings = scan_tree(ctx.root)
    _raise(findings, "values/ and chart/")
    files = sum(1 for f in ("values", "chart") for p in (ctx.root / f).rglob("*") if p.is_file())
    ctx.notes.append(f"no key-shaped strings in {files} files of values/ and chart/")


# The same search for the chart, run by Helm on every string of the values at install (templates/validate.yaml
# reads chart/files/checks/secrets.json). Go's regexp (RE2) has no look-arounds, so the two patterns that use them
# are written as tokens: the value is split on the characters that may not touch the secret, and a piece must
# match ``full`` (and each of ``needs``). ``skip``: a match that also matches it is no finding (NOT_A_VALUE).
_TOKEN_FORMS = {
    "Opsgenie API key (UUID)": {"split": r"[^0-9A-Za-z-]+",
                                "full": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"},
    "PagerDuty routing key": {"split": r"[^0-9A-Za-z_+/=-]+", "full": r"^[0-9A-Za-z]{32}$",
                              "needs": [r"[0-9]", r"[A-Za-z]"]},
}
_SKIPS = {
    "Authorization header value":
        r"(?i)authorization[\"']?\s*[:=]\s*[\"']?((basic|bearer|token|geniekey)\s+)?(/|\./|https?://|\{\{|\$\{|\$\(|<)",
}


def helm_spec() -> dict:
    """What Helm looks for in each string value, from ``PATTERNS`` and ``ALWAYS_SECRET`` (one source)."""
    patterns = []
    for kind, pattern in PATTERNS:
        entry: dict = {"kind": kind}
        if kind in _TOKEN_FORMS:
            entry.update(_TOKEN_FORMS[kind])
        else:
            if "(?<" in pattern.pattern or "(?=" in pattern.pattern or "(?!" in pattern.pattern:
                raise GeneratorError(f"secrets pattern {kind!r} uses a look-around, which Helm (RE2) cannot run: "
                                     "add its token form to _TOKEN_FORMS in generator/secrets.py")
            entry["regex"] = pattern.pattern
        if kind in _SKIPS:
            entry["skip"] = _SKIPS[kind]
        patterns.append(entry)
    return {"patterns": patterns, "allowMark": ALLOW_MARK, "alwaysSecretKey": ALWAYS_SECRET.pattern,
            "notAValue": NOT_A_VALUE.pattern,
            "message": "secrets belong in a Kubernetes Secret mounted as a file (routing_key_file, api_key_file, "
                       "credentials_file) and named in values ({name, key}), never in values or the chart"}
