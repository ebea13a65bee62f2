"""Real Prometheus and Alertmanager processes for the bundle and scrape tests, from a configuration file.

Thin context managers over the shared launcher (``generator.servers``): each
server runs on 127.0.0.1 on a free port with its data in ``workdir`` and is
stopped on leaving the ``with`` block; nothing is left running. They yield the
server's base URL.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from generator.servers import Servers


@contextlib.contextmanager
def prometheus(config: Path, workdir: Path, *, name: str = "prometheus"):
    with Servers(workdir) as group:
        yield group.prometheus(Path(config), name=name).url


@contextlib.contextmanager
def alertmanager(config: Path, workdir: Path, *, name: str = "alertmanager"):
    with Servers(workdir) as group:
        yield group.alertmanager(Path(config), name=name).url
