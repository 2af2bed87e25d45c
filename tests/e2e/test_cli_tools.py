"""`lrsweep report` and `lrsweep render` end to end, through the command line.

Covers: the report of a local sweep's directory is drawn again, with every trial listed; the
report of an LRSweep read back from a cluster (`kubectl get lrs NAME -o yaml`, here on
standard input, with fields this version does not know) is drawn through its rung values;
`--out DIR` writes DIR/report.png, and an --out that names no image format or cannot be
written exits 2; a directory where no sweep ran and a document that is not one LRSweep exit
2 saying what to give, and so do a result.json alone and a sweep that never ran; `render`
prints the pods a new sweep starts with as YAML Kubernetes accepts as Pods, and an invalid
sweep exits 2; `operator` without a cluster exits 2 saying what to set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.e2e.commands import ROOT, lrsweep
from tests.e2e.toy import toy_sweep_doc
from tests.packaging.checks import schema_violations

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG"


def _local_sweep(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        yaml.safe_dump(toy_sweep_doc("toy", {"strategy": "grid", "values": [0.05, 0.2]}))
    )
    out = tmp_path / "out"
    done = lrsweep("run", str(path), "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_the_report_of_a_local_sweep_is_drawn_again_with_its_trials_listed(
    tmp_path: Path,
) -> None:
    out = _local_sweep(tmp_path)
    (out / "report.png").unlink()
    done = lrsweep("report", str(out))
    assert done.returncode == 0, done.stderr
    assert (out / "report.png").read_bytes().startswith(PNG)
    assert "t000" in done.stdout
    assert "t001" in done.stdout


def test_a_report_into_a_directory_is_its_report_png(tmp_path: Path) -> None:
    (tmp_path / "plots").mkdir()
    done = lrsweep("report", "-", "--out", str(tmp_path / "plots"), stdin=_cluster_yaml())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "plots" / "report.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    ("name", "message"),
    [("r.jpgx", "give a file ending in .png, .svg, .pdf"), ("gone/r.png", "cannot write")],
)
def test_a_report_that_cannot_be_written_exits_2(tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "gone").write_text("a file where a directory is expected")
    done = lrsweep("report", "-", "--out", str(tmp_path / name), stdin=_cluster_yaml())
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def _from_cluster() -> dict[str, object]:
    """An LRSweep as `kubectl get lrs NAME -o yaml` prints it, status included."""
    doc = toy_sweep_doc("resnet-lr", {"strategy": "asha", "values": [0.01, 0.1]})
    doc["metadata"] = {"name": "resnet-lr", "uid": "u-1", "managedFields": [{"manager": "kopf"}]}
    doc["status"] = {
        "phase": "Succeeded",
        "bestLearningRate": 0.01,
        "bestTrial": "t000",
        "bestScore": 0.125,
        "message": "best rate 0.01",
        "fieldOfALaterVersion": True,
        "trials": {
            "t000": {
                "learningRate": 0.01,
                "phase": "Succeeded",
                "step": 100,
                "rungs": {"10": 0.9, "30": 0.4, "100": 0.125},
            },
            "t001": {"learningRate": 0.1, "phase": "Stopped", "step": 10, "rungs": {"10": 2.5}},
        },
    }
    return doc


def test_the_report_of_a_sweep_from_a_cluster_is_drawn_through_its_rung_values(
    tmp_path: Path,
) -> None:
    done = lrsweep(
        "report", "-", "--out", str(tmp_path / "r.png"), stdin=yaml.safe_dump(_from_cluster())
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.png").read_bytes().startswith(PNG)
    assert "0.125" in done.stdout
    assert "Stopped" in done.stdout


def test_the_report_of_a_sweep_from_a_cluster_lands_next_to_where_it_is_asked(
    tmp_path: Path,
) -> None:
    (tmp_path / "lrs.yaml").write_text(yaml.safe_dump(_from_cluster()))
    done = lrsweep("report", "lrs.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "resnet-lr-report.png").read_bytes().startswith(PNG)


def test_a_report_of_a_directory_where_no_sweep_ran_exits_2_saying_what_to_give(
    tmp_path: Path,
) -> None:
    done = lrsweep("report", str(tmp_path))
    assert done.returncode == 2
    assert "give the --out directory of a `lrsweep run`, or an LRSweep file" in done.stderr


def test_a_report_of_a_result_json_exits_2_saying_to_give_its_directory(tmp_path: Path) -> None:
    out = _local_sweep(tmp_path)
    done = lrsweep("report", str(out / "result.json"))
    assert done.returncode == 2
    assert "is a sweep's status alone (result.json): give the directory it is in" in done.stderr


def test_a_report_of_a_sweep_that_never_ran_exits_2(tmp_path: Path) -> None:
    unrun = toy_sweep_doc("toy", {"strategy": "grid", "values": [0.05]})
    done = lrsweep("report", "-", stdin=yaml.safe_dump(unrun))
    assert done.returncode == 2
    assert "an LRSweep without a status has no results to draw" in done.stderr


def test_a_report_of_a_list_of_sweeps_exits_2_naming_the_kind(tmp_path: Path) -> None:
    listed = {"apiVersion": "v1", "kind": "List", "items": [_from_cluster()]}
    done = lrsweep("report", "-", stdin=yaml.safe_dump(listed))
    assert done.returncode == 2
    assert "kind" in done.stderr


def test_render_prints_the_pods_a_new_sweep_starts_with() -> None:
    done = lrsweep("render", str(ROOT / "manifests" / "examples" / "quickstart.yaml"))
    assert done.returncode == 0, done.stderr
    (pod,) = list(yaml.safe_load_all(done.stdout))
    assert schema_violations(pod) == []
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["LRSWEEP_MODE"] == "range-test"
    assert "1 pod(s)" in done.stderr


def test_render_of_an_invalid_sweep_exits_2(tmp_path: Path) -> None:
    doc = toy_sweep_doc("bad", {"strategy": "grid", "min": 1.0, "max": 0.1})
    (tmp_path / "bad.yaml").write_text(json.dumps(doc))
    done = lrsweep("render", str(tmp_path / "bad.yaml"))
    assert done.returncode == 2
    assert "min (1) must be below max (0.1)" in done.stderr


def test_the_operator_without_a_cluster_exits_2_saying_what_to_set(tmp_path: Path) -> None:
    # Not in a pod (no service account) and no kubeconfig.
    nowhere = {"KUBECONFIG": str(tmp_path / "no-kubeconfig"), "KUBERNETES_SERVICE_HOST": ""}
    done = lrsweep("operator", env=nowhere, timeout=60)
    assert done.returncode == 2
    assert "no Kubernetes cluster to run on" in done.stderr
    assert "set KUBECONFIG" in done.stderr
    assert "Traceback" not in done.stderr


def _cluster_yaml() -> str:
    return yaml.safe_dump(_from_cluster())
