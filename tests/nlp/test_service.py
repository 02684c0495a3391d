from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from scrm.nlp import service
from scrm.nlp.service import Analyzer, Correction, ModelRegistry, WorkspaceExamples

LOST = "@云程航空 昨天 MU5137 上海飞成都，黑色双肩包落在 32C 座位上了，急！"


def test_lost_item_triage(analyzer: Analyzer) -> None:
    tri = analyzer.analyze(LOST, followers=120)
    assert tri.intent == "lost_item"
    assert tri.sentiment == "neg"
    assert not tri.is_spam
    assert tri.urgency in ("high", "urgent")
    types = {(e.type, e.value) for e in tri.entities}
    assert {("flight_no", "MU5137"), ("seat", "32C"), ("place", "上海"), ("place", "成都")} <= types
    d = tri.to_dict()
    assert d == dataclasses.asdict(tri)  # every field, nothing shared with the Triage
    assert d["entities"][0].keys() == {"type", "value", "start", "end"}
    assert 0.0 <= d["sentiment_score"] <= 1.0


def test_analyze_many_matches_analyze_and_predict(analyzer: Analyzer) -> None:
    texts = [LOST, "", "谢谢空姐帮我找回了钱包，服务太好了[心]", "加V: xs8899 低价出会员 http://t.cn/A6x8Yz"]
    many = analyzer.analyze_many(texts, catalogue=["X9"], followers=[10, None, 5_000_000, 0])
    assert len(many) == 4
    for text, tri in zip(texts, many, strict=True):
        one = analyzer.analyze(text)
        assert (one.intent, one.emotion, one.sentiment) == (tri.intent, tri.emotion, tri.sentiment)
        assert abs(one.intent_score - tri.intent_score) < 1e-6
    assert many[2].intent == "praise" and many[2].sentiment == "pos"
    assert many[3].is_spam and many[3].urgency == "low"
    label, score = analyzer.predict("intent", [texts[2]])[0]
    assert label == many[2].intent and abs(score - many[2].intent_score) < 1e-6


def test_predict_labels_restriction_and_probabilities(analyzer: Analyzer) -> None:
    texts = ["这手机太垃圾了", "好喜欢", "明天下午三点开会"]
    full = analyzer.predict("sentiment", texts)
    two = analyzer.predict("sentiment", texts, ["pos", "neg"])
    assert all(lab in ("pos", "neg") for lab, _ in two)
    assert all(0.5 <= s <= 1.0 for _, s in two)
    assert [lab for lab, _ in two][:2] == ["neg", "pos"]
    assert all(0.0 <= s <= 1.0 for _, s in full)
    with pytest.raises(ValueError):
        analyzer.predict("sentiment", texts, ["happy"])
    with pytest.raises(ValueError):
        analyzer.predict("topic", texts)
    assert analyzer.predict("emotion", []) == []


def test_urgency_uses_influence() -> None:
    assert service.urgency("inquiry", "neutral", 0.1, None, "请问几点开门", False) == "normal"
    assert service.urgency("complaint", "neg", 0.95, 2_000_000, "太差了", False) == "urgent"
    assert service.urgency("praise", "pos", 0.01, None, "好喝", False) == "low"
    assert service.urgency("complaint", "neg", 0.95, None, "垃圾", True) == "low"


def test_a_cleared_cache_reloads_the_same_trained_models(analyzer: Analyzer) -> None:
    # Load time is measured in bench/nlp.py, not here.
    service.clear_cache()
    again = service.get_analyzer()
    assert again is not analyzer and again.model_version == analyzer.model_version
    text = "@云程航空 昨天 MU5137 上海飞成都，黑色双肩包落在 32C 座位上了，急！"
    assert again.analyze(text).to_dict() == analyzer.analyze(text).to_dict()


# ------------------------------------------------------------------------------------------------
# Dev-split floors (regression guards; the model card in docs/nlp.md has the current figures)

FLOORS = {
    "chnsenticorp_dev": ("accuracy", 0.885),
    "weibo_senti_dev": ("accuracy", 0.975),
    "weibo_senti_dev_stripped": ("accuracy", 0.75),
    "smp2020_usual_dev": ("macro_f1", 0.63),
    "smp2020_usual_dev_polarity": ("macro_f1", 0.77),
    "intent_dev_handwritten": ("macro_f1", 0.84),
}
# Independently written intent sets in scrm/demo/data (evaluation only, never trained on)
INDEPENDENT_FLOORS = {"intent_independent": 0.80, "intent_demo_day": 0.74}


def test_dev_scores_above_floor(analyzer: Analyzer) -> None:
    metrics = service.dev_metrics(analyzer)
    for name, (metric, floor) in FLOORS.items():
        assert metrics[name][metric] >= floor, (name, metrics[name][metric])


def test_independent_intent_scores_above_floor(analyzer: Analyzer) -> None:
    metrics = service.independent_intent_metrics(analyzer)
    for name, floor in INDEPENDENT_FLOORS.items():
        assert metrics[name]["n"] > 400
        assert metrics[name]["macro_f1"] >= floor, (name, metrics[name]["macro_f1"])


def test_sentiment_routes_reviews_and_social_posts(analyzer: Analyzer) -> None:
    counts, dense = analyzer.featurizer.transform(
        [
            "房间很干净，前台服务热情，早餐种类也多，下次出差还会入住这家酒店。",
            "@小明同学 今天终于放假啦[哈哈][哈哈] 一起去吃火锅吗",
        ]
    )
    p_review = analyzer.models["domain"].proba(counts, dense)[:, 0]
    assert p_review[0] > 0.5 > p_review[1]
    pos_neg = analyzer.predict("sentiment", ["房间很干净，前台服务热情，下次还来"], ["pos", "neg"])
    assert pos_neg[0][0] == "pos"


# ------------------------------------------------------------------------------------------------
# Learning from agents


@pytest.fixture
def tmp_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "registry")
    monkeypatch.setattr(service, "registry", lambda: reg)
    return reg


def _split(texts: list[str]) -> tuple[list[str], list[str]]:
    held = [t for t in texts if service.is_holdout(t)]
    train = [t for t in texts if not service.is_holdout(t)]
    return train, held


def test_custom_intent_learned_from_few_examples(tmp_registry: ModelRegistry, analyzer: Analyzer) -> None:
    ws = "test-custom-intent"
    examples = WorkspaceExamples(
        custom_intents={
            "membership_upgrade": [
                "银卡怎么升级成金卡会员",
                "会员等级怎么提升，要飞多少次",
                "我想升金卡，还差多少里程",
            ],
        }
    )
    entry = service.train_workspace(ws, examples)
    assert entry.activated
    assert tmp_registry.active_version(ws) is not None
    ws_an = service.get_analyzer(ws)
    assert "membership_upgrade" in ws_an.labels("intent")
    label, _ = ws_an.predict("intent", ["请问怎么才能升级到金卡会员等级"])[0]
    assert label == "membership_upgrade"
    # the base intents still work in the workspace model
    assert ws_an.predict("intent", [LOST])[0][0] == "lost_item"
    # the default analyzer is unaffected
    assert "membership_upgrade" not in analyzer.labels("intent")


def test_worse_model_is_not_activated(tmp_registry: ModelRegistry) -> None:
    ws = "test-activation"
    pool = [
        f"{obj}落在{seat}座位上了，航班YC12{n}，麻烦帮忙找一下"
        for n, (obj, seat) in enumerate(
            [(o, s) for o in ("钱包", "耳机", "护照", "外套", "充电宝", "雨伞") for s in ("12A", "3C", "40K")]
        )
    ]
    train, held = _split(pool)
    assert held and train
    good = [Correction(t, "intent", "lost_item") for t in pool]
    first = service.train_workspace(ws, WorkspaceExamples(corrections=good))
    assert first.activated
    assert first.metrics["holdout_accuracy"] == 1.0
    active = tmp_registry.active_version(ws)
    # poisoned corrections: held-out ones correct, every training one (and variants) labelled praise
    poison = [Correction(t, "intent", "lost_item") for t in held]
    for t in train:
        poison += [
            Correction(t + suffix, "intent", "praise") for suffix in ("", "。", "！", " 谢谢", "~", "？")
        ]
    poison = [c for c in poison if c.label == "lost_item" or not service.is_holdout(c.text)]
    second = service.train_workspace(ws, WorkspaceExamples(corrections=poison))
    assert second.metrics["holdout_accuracy"] < second.metrics["previous_holdout_accuracy"]
    assert not second.activated
    assert tmp_registry.active_version(ws) == active
    versions = tmp_registry.versions(ws)
    assert len(versions) == 2 and versions[1]["activated"] is False


def test_fused_fast_path_equals_per_model_proba(analyzer: Analyzer) -> None:
    texts = ["房间很干净，前台服务热情", "", "@云程航空 MU5137 行李丢了[怒]", "哈哈哈 http://t.cn/abc"]
    fast = analyzer._features(texts)
    counts, dense = analyzer.featurizer.transform(texts)
    for name in ("polarity", "polarity_review", "domain", "subjectivity", "emotion", "intent"):
        assert np.allclose(fast[name], analyzer.models[name].proba(counts, dense), atol=1e-4), name


def test_workspace_without_own_model_uses_the_default_analyzer(
    tmp_registry: ModelRegistry, analyzer: Analyzer
) -> None:
    service._analyzers.pop("ws-without-model", None)
    assert service.get_analyzer("ws-without-model") is service.get_analyzer()
    service._analyzers.pop("ws-without-model", None)
