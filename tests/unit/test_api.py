"""Loading LRSweep documents: what is accepted and what each refusal says.

Covers: the quickstart example loads with defaults filled in (adaptive's first round is
smaller than the other strategies' unless `candidates` is set) and has the slots to judge
that round as one; every refusal names the field,
the bad value and what is allowed (unknown fields, min >= max, non-positive budgets, a name
too long for its trial pods, rates in values that are not positive, bad strategy, no
containers, invalid YAML, several documents, not a mapping). A stored status whose
condition has no lastTransitionTime still loads (only the CRD requires one).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lrsweep.api import LRSweep, SpecError, Strategy, load_sweep, parse_spec, parse_status
from lrsweep.engine import strategies

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "manifests" / "examples" / "quickstart.yaml"


def _doc(**spec: object) -> dict[str, object]:
    base: dict[str, object] = {
        "trial": {"template": {"spec": {"containers": [{"name": "t", "image": "i"}]}}}
    }
    base.update(spec)
    return {
        "apiVersion": "lrsweep.dev/v1alpha1",
        "kind": "LRSweep",
        "metadata": {"name": "s"},
        "spec": base,
    }


def _error(doc: object) -> str:
    with pytest.raises(SpecError) as info:
        load_sweep(yaml.safe_dump(doc))
    return str(info.value)


def test_quickstart_example_loads() -> None:
    sweep = load_sweep(QUICKSTART.read_text())
    assert isinstance(sweep, LRSweep)
    assert sweep.spec.search.strategy is Strategy.ADAPTIVE
    assert sweep.spec.objective.metric == "val_loss"


def test_the_quickstart_judges_its_whole_first_round_together() -> None:
    spec = load_sweep(QUICKSTART.read_text()).spec
    assert strategies.cohort(spec) == spec.search.candidate_count


def test_every_example_loads() -> None:
    for path in sorted((ROOT / "manifests" / "examples").glob("*.yaml")):
        load_sweep(path.read_text())


def test_the_multi_gpu_example_is_the_quickstart_on_two_processes() -> None:
    """Its tests compare its winner with the quickstart's: the two must sweep alike."""
    quickstart = yaml.safe_load(QUICKSTART.read_text())
    multi = yaml.safe_load((ROOT / "manifests" / "examples" / "multi-gpu.yaml").read_text())
    pods = [doc["spec"]["trial"].pop("template")["spec"] for doc in (quickstart, multi)]
    assert multi["spec"] == quickstart["spec"]
    one, two = (pod["containers"][0] for pod in pods)
    assert two["args"] == one["args"]
    assert two["command"][:4] == ["torchrun", "--standalone", "--nproc-per-node", "2"]
    assert two["resources"]["limits"]["nvidia.com/gpu"] == 2


def test_defaults_fill_a_minimal_spec() -> None:
    sweep = load_sweep(yaml.safe_dump(_doc()))
    assert sweep.spec.budget.steps == 3000
    assert sweep.spec.search.parallelism == 4


def test_adaptive_defaults_to_fewer_candidates_than_the_other_strategies() -> None:
    assert load_sweep(yaml.safe_dump(_doc())).spec.search.candidate_count == 4
    grid = _doc(search={"strategy": "grid"})
    assert load_sweep(yaml.safe_dump(grid)).spec.search.candidate_count == 8


def test_explicit_candidates_win_over_the_strategy_default() -> None:
    doc = _doc(search={"candidates": 10})
    assert load_sweep(yaml.safe_dump(doc)).spec.search.candidate_count == 10


def test_unknown_field_is_named() -> None:
    assert _error(_doc(search={"candidatez": 3})) == (
        "spec.search.candidatez: unknown field; remove it or check its spelling"
    )


def test_min_not_below_max_names_both_values() -> None:
    message = _error(_doc(search={"min": 1.0, "max": 0.1}))
    assert message.startswith("spec.search:")
    assert "min (1) must be below max (0.1)" in message


def test_non_positive_budget_names_field_and_value() -> None:
    message = _error(_doc(budget={"steps": 0}))
    assert "spec.budget.steps" in message
    assert "(got 0)" in message


def test_unset_eval_interval_and_first_rung_follow_the_budget() -> None:
    budget = load_sweep(yaml.safe_dump(_doc(budget={"steps": 600}))).spec.budget
    assert (budget.evalEvery, budget.minSteps) == (20, 60)


def test_the_default_budget_evaluates_every_100_steps_and_compares_first_at_300() -> None:
    budget = load_sweep(yaml.safe_dump(_doc())).spec.budget
    assert (budget.steps, budget.evalEvery, budget.minSteps) == (3000, 100, 300)


def test_a_set_eval_interval_and_first_rung_are_kept() -> None:
    doc = _doc(budget={"steps": 600, "evalEvery": 50, "minSteps": 100})
    budget = load_sweep(yaml.safe_dump(doc)).spec.budget
    assert (budget.evalEvery, budget.minSteps) == (50, 100)


def test_a_first_rung_past_the_budget_says_what_to_set() -> None:
    message = _error(_doc(budget={"steps": 100, "minSteps": 300}))
    assert message == (
        "spec.budget: minSteps (300) must not exceed steps (100); "
        "set budget.minSteps to at most 100 or raise budget.steps"
    )


def test_an_invalid_budget_is_named_once_not_again_by_the_defaults_that_follow_it() -> None:
    assert _error(_doc(budget={"steps": "many"})) == (
        "spec.budget.steps: Input should be a valid integer, unable to parse string as an "
        "integer (got 'many')"
    )


def test_eval_interval_longer_than_the_budget_is_refused() -> None:
    message = _error(_doc(budget={"steps": 50, "evalEvery": 60, "minSteps": 10}))
    assert message == (
        "spec.budget: evalEvery (60) must not exceed steps (50); "
        "set budget.evalEvery to at most 50 or raise budget.steps"
    )


def test_a_budget_too_short_to_judge_a_trial_is_refused_saying_what_to_set() -> None:
    message = _error(_doc(budget={"steps": 1, "evalEvery": 1, "minSteps": 1}))
    assert message == (
        "spec.budget: steps (1) must be at least 2 x evalEvery (1): a trial is judged from "
        "at least 3 evaluations (step 0, then every evalEvery steps); raise budget.steps to 2 "
        "or lower budget.evalEvery to 1"
    )


def test_a_name_too_long_for_its_trial_pods_is_refused_saying_the_limit() -> None:
    message = _error({**_doc(), "metadata": {"name": "x" * 56}})
    assert message.startswith("metadata.name: an LRSweep name can have at most 55 characters")
    assert "choose a shorter name" in message


def test_a_rate_in_values_that_is_not_positive_is_named_with_what_to_give() -> None:
    message = _error(_doc(search={"strategy": "grid", "values": [0.01, 0.0]}))
    assert message == (
        "spec.search.values: item 1 is 0, not a learning rate (a rate is positive and finite): "
        "remove it or replace it"
    )


def test_unknown_strategy_lists_the_allowed_ones() -> None:
    message = _error(_doc(search={"strategy": "bayes"}))
    assert "spec.search.strategy: got 'bayes'" in message
    assert "'adaptive'" in message


def test_template_without_containers_is_refused() -> None:
    message = _error(_doc(trial={"template": {"spec": {"containers": []}}}))
    assert "containers must list at least one container" in message


def test_invalid_yaml_gives_line_and_column() -> None:
    with pytest.raises(SpecError, match=r"invalid YAML at line 3, column \d+"):
        load_sweep("spec:\n  search: [1, 2\n")


def test_more_than_one_document_is_refused() -> None:
    with pytest.raises(SpecError, match="exactly one LRSweep document, found 2"):
        load_sweep("a: 1\n---\nb: 2\n")


def test_a_bare_value_is_not_a_sweep() -> None:
    with pytest.raises(SpecError, match="expected an LRSweep object"):
        load_sweep("42\n")


def test_bare_spec_errors_are_prefixed_with_spec() -> None:
    with pytest.raises(SpecError, match=r"^spec\.trial: required field is missing"):
        parse_spec({})


def test_a_stored_condition_without_a_transition_time_still_loads() -> None:
    status = parse_status({"conditions": [{"type": "Ready", "status": "True", "reason": "R"}]})
    assert status.conditions[0].lastTransitionTime == ""
