"""Every copy of the CRD is the one generated from the models.

Covers: the chart's crds/ file equals `lrsweep crd` byte for byte; `helm template
--include-crds` and `kubectl kustomize manifests/` both carry exactly that CRD.
"""

from __future__ import annotations

from lrsweep.crd import build_crd, render_crd
from tests.packaging.tools import CHART, ROOT, helm_template, kustomize, only

CHART_CRD = CHART / "crds" / "lrsweep.dev_lrsweeps.yaml"


def test_chart_crd_file_equals_the_generated_crd() -> None:
    assert CHART_CRD.read_text() == render_crd(), (
        f"{CHART_CRD.relative_to(ROOT)} is stale: run `lrsweep crd > {CHART_CRD.relative_to(ROOT)}`"
    )


def test_helm_installs_the_generated_crd() -> None:
    assert only(helm_template(), "CustomResourceDefinition") == build_crd()


def test_kustomize_applies_the_generated_crd() -> None:
    crd = only(kustomize(), "CustomResourceDefinition")
    # kustomize adds the common `app.kubernetes.io/part-of` label; the rest is untouched.
    assert crd["metadata"]["name"] == build_crd()["metadata"]["name"]
    assert crd["spec"] == build_crd()["spec"]
