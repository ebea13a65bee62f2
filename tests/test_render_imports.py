"""``generator render`` loads only what rendering needs (bench/run's render figure is CPU time of a cold process).

The command line offers the ``preview`` subcommand, whose machinery (HTTP client, page and chart drawing, the
browser driver) is loaded when a preview runs, not when the chart is rendered; difflib only when a chart is
stale; jsonschema only when an environment's values may be invalid. Checked in a fresh interpreter, as bench/run measures it.
"""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

PROBE = """
import json, sys
from generator.cli import main
code = main(["--root", sys.argv[1], "render", "--check"])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""
NOT_FOR_RENDER = ("generator.preview.run", "generator.preview.page", "generator.preview.queries",
                  "generator.preview.browser", "generator.preview.stack", "generator.preview.checks",
                  "generator.servers", "difflib",
                  "jsonschema")   # valid values are decided without it (generator/schema.py _valid); errors load it


def test_render_does_not_import_the_preview_machinery():
    proc = subprocess.run([sys.executable, "-c", PROBE, str(ROOT)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, "chart/ is stale: render it first (the probe needs an up-to-date chart)"
    assert [m for m in NOT_FOR_RENDER if m in result["modules"]] == []


def test_the_preview_package_still_offers_its_names():
    proc = subprocess.run([sys.executable, "-c", "from generator.preview import Options, Report, preview, page; "
                           "print(page.MODES, page.THEMES, Options.__name__, Report.__name__, preview.__name__)"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "desktop" in proc.stdout and "Options" in proc.stdout
