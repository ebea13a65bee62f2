"""Object names stay unique and valid for the longest release name Helm allows."""
import re
import subprocess
from collections import Counter

import pytest

from conftest import ENVIRONMENTS, HELM_MAJORS, ROOT, manifests
from generator import tools

LONGEST_RELEASE = "virtengine-monitoring-production-eu-west-1-cluster-a"   # 52 characters (Helm allows 53)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@pytest.mark.parametrize("major", HELM_MAJORS)
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_object_keeps_its_own_name_under_a_long_release_name(env, major):
    out = subprocess.run([tools.helm(major), "template", LONGEST_RELEASE, str(ROOT / "chart"), "--namespace",
                          "monitoring", "-f", str(ROOT / "values" / f"{env}.yaml")],
                         capture_output=True, text=True, check=True).stdout
    names = Counter((o["kind"], o["metadata"]["name"]) for o in manifests(out))
    duplicates = [f"{kind}/{name}" for (kind, name), n in names.items() if n > 1]
    assert not duplicates, f"objects that overwrite each other on install: {duplicates}"
    for kind, name in names:
        assert len(name) <= 253 and DNS_SUBDOMAIN.match(name), f"{kind}/{name} is not a valid object name"
    assert sum(1 for kind, _ in names if kind == "PrometheusRule") >= 5
    assert sum(1 for kind, _ in names if kind == "ConfigMap") >= 15
