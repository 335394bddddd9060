"""Mixture maths against hand-computed values, and the gate's top-k / shared-expert semantics."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import joblib
import pytest

from medmoe_lm_eval.harness.config import ConfigError, parse_adapter
from medmoe_lm_eval.harness.fusion import FusionError, fuse_loglikelihood, mixture_logprob, normalise
from medmoe_lm_eval.harness.routing.decision_log import RoutingLog
from medmoe_lm_eval.harness.routing.router import Router, gate
from medmoe_lm_eval.harness.routing.scorers import RouterError, load_scorer
from medmoe_lm_eval.schema.routing_row import RoutingRow


def test_mixture_matches_hand_computed_value():
    # p1 = 0.2, p2 = 0.5, weights 0.75/0.25 -> 0.75*0.2 + 0.25*0.5 = 0.275
    got = mixture_logprob([math.log(0.2), math.log(0.5)], [0.75, 0.25])
    assert got == pytest.approx(math.log(0.275), abs=1e-12)


def test_single_expert_is_returned_bit_for_bit():
    value = -12.345678901234567
    assert mixture_logprob([value], [1.0]) == value
    assert fuse_loglikelihood([(value, True)], [1.0]) == (value, True)


def test_greedy_flag_comes_from_the_top_expert():
    assert fuse_loglikelihood([(-1.0, False), (-0.1, True)], [0.6, 0.4])[1] is False


def test_underflowing_weights_and_probabilities_stay_exact():
    # exp(-800) underflows in float64, the log-space sum must not
    tiny = 1e-300
    got = mixture_logprob([-800.0, -801.0], [1 - tiny, tiny])
    assert got == pytest.approx(-800.0, abs=1e-9)
    both = mixture_logprob([-900.0, -900.0], [0.5, 0.5])
    assert both == pytest.approx(-900.0, abs=1e-12)


def test_impossible_continuations_give_minus_infinity_not_nan():
    assert mixture_logprob([-math.inf, -math.inf], [0.5, 0.5]) == -math.inf
    assert mixture_logprob([-math.inf, math.log(0.5)], [0.5, 0.5]) == pytest.approx(math.log(0.25))


@pytest.mark.parametrize("lps,ws", [([math.nan], [1.0]), ([-1.0, -2.0], [1.0]), ([0.5], [1.0])])
def test_bad_inputs_raise_instead_of_returning_a_number(lps, ws):
    with pytest.raises(FusionError):
        mixture_logprob(lps, ws)


def test_normalise_rejects_negative_and_zero_totals():
    assert normalise([2, 2]) == [0.5, 0.5]
    with pytest.raises(FusionError):
        normalise([0, 0])
    with pytest.raises(FusionError):
        normalise([1, -1])


def test_gate_top_k_renormalises_mixtral_style():
    assert gate({"a": 0.5, "b": 0.3, "c": 0.2}, top_k=2) == [("a", pytest.approx(0.625)), ("b", pytest.approx(0.375))]
    assert gate({"a": 0.5, "b": 0.3, "c": 0.2}, top_k=1) == [("a", 1.0)]


def test_gate_min_weight_drops_light_experts_but_keeps_the_top():
    assert [k for k, _ in gate({"a": 0.9, "b": 0.1}, top_k=2, min_weight=0.2)] == ["a"]
    assert gate({"a": 0.0, "b": 0.0}, top_k=2)[0][1] == pytest.approx(0.5)


def _adapter(tmp_path: Path, router: dict, shared: dict | None = None, extra_expert: bool = False) -> Router:
    experts = [
        {"name": "bio", "domain": "biomedical", "model": str(tmp_path)},
        {"name": "law", "domain": "legal", "model": str(tmp_path)},
        {"name": "code", "domain": "code", "model": str(tmp_path)},
    ]
    if extra_expert:
        experts.append({"name": "gen", "domain": "general", "model": str(tmp_path)})
    data = {"name": "t", "kind": "moe", "experts": experts, "router": router, "source": "t.yaml"}
    if shared:
        data["shared_expert"] = shared
    return Router(parse_adapter(data, "t.yaml"))


def test_oracle_routes_on_task_domain(tmp_path):
    router = _adapter(tmp_path, {"type": "oracle", "task_domains": {"my_law_task": "legal"}})
    routes = router.route(["x", "y", "z"], ["medmcqa", "my_law_task", "mbpp"])
    assert [r.experts for r in routes] == [("bio",), ("law",), ("code",)]
    with pytest.raises(RouterError, match="task_domains"):
        router.route(["q"], ["hellaswag"])


def test_shared_expert_is_always_on_with_its_weight(tmp_path):
    router = _adapter(tmp_path, {"type": "oracle", "top_k": 1}, shared={"name": "gen", "weight": 0.25}, extra_expert=True)
    (route,) = router.route(["q"], ["medmcqa"])
    assert route.experts == ("bio", "gen") and route.weights == pytest.approx((0.75, 0.25))


def test_keywords_and_document_pooling(tmp_path):
    router = _adapter(tmp_path, {"type": "keywords", "top_k": 2, "keywords": {"biomedical": ["patient"], "legal": ["court"], "code": ["def "]}})
    texts = ["the patient and the court", "the patient was seen", "def f(): pass"]
    routes = router.route(texts, ["t", "t", "t"], groups=[("t", 0), ("t", 0), ("t", 1)])
    # the two requests of document 0 share one decision: (1/2, 1/2) and (1, 0) average to (3/4, 1/4)
    assert routes[0] == routes[1]
    assert dict(zip(routes[0].experts, routes[0].weights)) == pytest.approx({"bio": 0.75, "law": 0.25})
    assert routes[2].experts == ("code",)


def test_fixed_weights_are_normalised_and_said_so(tmp_path):
    router = _adapter(tmp_path, {"type": "fixed", "weights": {"bio": 3, "law": 1}})
    (route,) = router.route(["anything"], ["t"])
    assert route.experts == ("bio", "law") and route.weights == pytest.approx((0.75, 0.25))
    assert any("normalised" in note for note in router.notes)
    uniform = _adapter(tmp_path, {"type": "uniform"})
    assert uniform.route(["q"], ["t"])[0].weights == pytest.approx((1 / 3,) * 3)


class _Trap:
    """Unpickling this writes a file: proof that a loader ran code from the router file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pickle code ran"))


def test_pickled_routers_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "ran.txt"
    old = tmp_path / "default_router.joblib"
    joblib.dump({"kind": "medmoe-router", "pipeline": _Trap(marker)}, old)
    disguised = tmp_path / "router.json"  # a pickle renamed: refused by its first bytes
    disguised.write_bytes(pickle.dumps(_Trap(marker)))
    compressed = tmp_path / "compressed.json"
    joblib.dump(_Trap(marker), compressed, compress=3)
    for path in (old, disguised, compressed):
        with pytest.raises(RouterError) as err:
            load_scorer(path)
        msg = str(err.value)
        assert msg.startswith(f"{path}: router.path: a pickled router") and "\n" not in msg
        assert f"fix: retrain it as JSON with `medmoe train-router --data <data> --out {path.with_suffix('.json')}`" in msg
    assert not marker.exists()


def test_transformers_router_folder_with_pickled_weights_is_refused(tmp_path):
    folder = tmp_path / "tf_router"
    folder.mkdir()
    (folder / "medmoe_router.json").write_text(json.dumps({"kind": "medmoe-router", "domains": ["a", "b"]}))
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Trap(tmp_path / "ran.txt")))
    with pytest.raises(RouterError, match="folder has no model.safetensors") as err:
        load_scorer(folder)
    assert "\n" not in str(err.value) and not (tmp_path / "ran.txt").exists()


def test_corrupt_wrong_kind_and_old_format_router_files(tmp_path):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"kind": "medmoe-router", ')
    with pytest.raises(RouterError, match="not a JSON router file"):
        load_scorer(corrupt)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"some": "dict"}))
    with pytest.raises(RouterError, match="not a medmoe router"):
        load_scorer(wrong)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"kind": "medmoe-router", "format": 1, "domains": ["a"]}))
    with pytest.raises(RouterError, match="router format 1, this release reads 2 and 3") as err:
        load_scorer(old)
    assert "medmoe train-router" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(RouterError, match="file not found"):
        load_scorer(tmp_path / "nowhere.json")


# -- uncertain queries: no guess -----------------------------------------------------------------

KEYWORDS = {"biomedical": ["patient"], "legal": ["court"], "code": ["def "]}


def test_unsure_query_goes_to_the_fallback_expert(tmp_path):
    router = _adapter(tmp_path, {"type": "keywords", "keywords": KEYWORDS, "threshold": 0.6, "fallback": "gen"}, extra_expert=True)
    # probabilities by keyword counts: 2/3 (over 0.6: routed), 1/2 and 1/3 each (under: fallback)
    sure, split, nothing = router.route(["patient patient court", "patient court", "weather"], ["t", "t", "t"])
    assert sure.experts == ("bio",) and not sure.fallback
    assert split.experts == ("gen",) and split.weights == (1.0,) and split.fallback and split.routed_domain == "general"
    assert split.probs == pytest.approx({"biomedical": 0.5, "legal": 0.5, "code": 0.0})
    assert nothing.fallback and nothing.experts == ("gen",)


def test_unsure_query_goes_to_the_shared_expert_alone(tmp_path):
    router = _adapter(tmp_path, {"type": "keywords", "keywords": KEYWORDS, "threshold": 0.6}, shared={"name": "gen", "weight": 0.2}, extra_expert=True)
    sure, unsure = router.route(["patient", "patient court"], ["t", "t"])
    assert sure.experts == ("bio", "gen") and sure.weights == pytest.approx((0.8, 0.2))
    assert unsure.experts == ("gen",) and unsure.weights == (1.0,) and unsure.fallback


def test_threshold_without_anyone_to_fall_back_to_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        _adapter(tmp_path, {"type": "keywords", "keywords": KEYWORDS, "threshold": 0.6})
    assert "router.threshold" in str(err.value) and "router.fallback" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="'nobody' is not one of the experts"):
        _adapter(tmp_path, {"type": "keywords", "keywords": KEYWORDS, "threshold": 0.6, "fallback": "nobody"})
    with pytest.raises(ConfigError, match="router type 'oracle' has no probabilities"):
        _adapter(tmp_path, {"type": "oracle", "threshold": 0.6, "fallback": "bio"})


def test_routing_log_says_a_decision_fell_back(tmp_path):
    log = RoutingLog(tmp_path / "routing.jsonl")
    log.add(
        [
            RoutingRow("t", 0, "loglikelihood", ["bio"], [1.0], "biomedical", "biomedical", 0.1, "a patient"),
            RoutingRow("t", 1, "loglikelihood", ["gen"], [1.0], "biomedical", "general", 0.1, "weather", fallback=True),
        ]
    )
    log.close()
    rows = [json.loads(line) for line in (tmp_path / "routing.jsonl").read_text().splitlines()]
    assert [r["fallback"] for r in rows] == [False, True]
    assert log.summary()["t"].fallbacks == 1 and log.summary()["t"].agreement == 0.5
