from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from scrm.nlp import service
from scrm.nlp.cli import app
from scrm.nlp.service import Analyzer

runner = CliRunner()


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_predict_keeps_order_and_handles_empty_text(tmp_path: Path, analyzer: Analyzer) -> None:
    rows = [
        {"id": "a", "text": "@云程航空 昨天 MU5137 上海飞成都，黑色双肩包落在 32C 座位上了，急！"},
        {"id": "b", "text": ""},
        {"id": 7, "text": "加微信 fuli666 兼职刷单日赚500 http://t.cn/A6x8Yz"},
        {"id": "d", "text": "请问经济舱托运行李额度是多少公斤"},
    ]
    inp = _write(tmp_path / "in.jsonl", [json.dumps(r, ensure_ascii=False) for r in rows])
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["predict", "--task", "intent", "--input", str(inp), "--output", str(out)])
    assert res.exit_code == 0, res.output
    got = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [g["id"] for g in got] == ["a", "b", 7, "d"]
    assert got[0]["label"] == "lost_item"
    assert got[2]["label"] == "spam"
    assert got[3]["label"] == "inquiry"
    assert all(0.0 <= g["score"] <= 1.0 for g in got)
    assert got[1]["label"] in analyzer.labels("intent")


def test_labels_restriction(tmp_path: Path) -> None:
    rows = [
        json.dumps({"id": str(i), "text": t}, ensure_ascii=False)
        for i, t in enumerate(["今天天气不错，出去走走", "气死我了，什么破服务[怒]", "好开心[哈哈]", ""])
    ]
    inp = _write(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    res = runner.invoke(
        app,
        ["predict", "--task", "sentiment", "--labels", "pos,neg", "--input", str(inp), "--output", str(out)],
    )
    assert res.exit_code == 0, res.output
    got = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(got) == 4
    assert {g["label"] for g in got} <= {"pos", "neg"}
    assert got[1]["label"] == "neg" and got[2]["label"] == "pos"
    assert all(g["score"] >= 0.5 for g in got)  # renormalised over the two labels
    res = runner.invoke(
        app,
        [
            "predict",
            "--task",
            "sentiment",
            "--labels",
            "pos,bogus",
            "--input",
            str(inp),
            "--output",
            str(out),
        ],
    )
    assert res.exit_code != 0 and "bogus" in res.output


def test_malformed_line_names_line_number(tmp_path: Path) -> None:
    inp = _write(tmp_path / "bad.jsonl", ['{"id": "1", "text": "好"}', "", '{"id": "3" "text": "坏"}'])
    res = runner.invoke(
        app, ["predict", "--task", "sentiment", "--input", str(inp), "--output", str(tmp_path / "o.jsonl")]
    )
    assert res.exit_code != 0
    assert "line 3" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "o.jsonl").exists()
    inp = _write(tmp_path / "bad2.jsonl", ['{"text": "没有id"}'])
    res = runner.invoke(app, ["evaluate", "--task", "sentiment", "--input", str(inp)])
    assert res.exit_code != 0 and "line 1" in res.output and "id" in res.output
    inp = _write(tmp_path / "bad3.jsonl", ['{"id": "1", "text": "好"}', '{"id": "2", "text": "好"}'])
    res = runner.invoke(app, ["evaluate", "--task", "sentiment", "--input", str(inp)])
    assert res.exit_code != 0 and "line 1" in res.output and "label" in res.output


def test_evaluate_round_trip(tmp_path: Path) -> None:
    texts = [
        ("太好了，非常满意[哈哈]", "pos"),
        ("垃圾服务，再也不来了[怒]", "neg"),
        ("质量太差，退货", "neg"),
        ("好喜欢，推荐！", "pos"),
        ("", "neg"),
    ]
    rows = [
        json.dumps({"id": str(i), "text": t, "label": y}, ensure_ascii=False)
        for i, (t, y) in enumerate(texts)
    ]
    inp = _write(tmp_path / "gold.jsonl", rows)
    out = tmp_path / "pred.jsonl"
    res = runner.invoke(
        app,
        ["predict", "--task", "sentiment", "--labels", "pos,neg", "--input", str(inp), "--output", str(out)],
    )
    assert res.exit_code == 0, res.output
    pred = [json.loads(x)["label"] for x in out.read_text(encoding="utf-8").splitlines()]
    expected_acc = sum(p == y for p, (_, y) in zip(pred, texts, strict=True)) / len(texts)
    res = runner.invoke(app, ["evaluate", "--task", "sentiment", "--labels", "pos,neg", "--input", str(inp)])
    assert res.exit_code == 0, res.output
    assert f"accuracy: {expected_acc:.4f}" in res.output
    assert "macro-F1" in res.output and "confusion" in res.output
    res = runner.invoke(
        app, ["evaluate", "--task", "sentiment", "--labels", "pos,neg", "--json", "--input", str(inp)]
    )
    data = json.loads(res.output)
    assert abs(data["accuracy"] - expected_acc) < 1e-9
    assert sum(map(sum, data["confusion"])) == len(texts)


def test_workspace_without_provider_is_a_clear_error(tmp_path: Path) -> None:
    service.set_workspace_examples_provider(None)
    inp = _write(tmp_path / "in.jsonl", ['{"id": "1", "text": "你好"}'])
    res = runner.invoke(
        app,
        [
            "predict",
            "--task",
            "intent",
            "--workspace",
            "acme",
            "--input",
            str(inp),
            "--output",
            str(tmp_path / "o.jsonl"),
        ],
    )
    assert res.exit_code != 0 and "provider" in res.output
    res = runner.invoke(app, ["train", "--workspace", "acme"])
    assert res.exit_code != 0 and "provider" in res.output


def test_a_bad_training_thread_count_is_a_clear_error_not_a_traceback(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    import pytest

    from scrm.errors import Invalid
    from scrm.nlp import training

    for bad in ("two", "0", "-1", "1.5", "999"):
        monkeypatch.setenv("SCRM_NLP_TRAIN_THREADS", bad)
        with pytest.raises(Invalid, match="SCRM_NLP_TRAIN_THREADS must be a whole number"):
            training.train_threads()
    monkeypatch.setenv("SCRM_NLP_TRAIN_THREADS", " 3 ")
    assert training.train_threads() == 3
    monkeypatch.delenv("SCRM_NLP_TRAIN_THREADS")
    assert training.train_threads() == training.DEFAULT_TRAIN_THREADS
    # the setting is read when training starts, not at import: a bad value no longer breaks
    # every command that imports the NLP package
    env = {**os.environ, "SCRM_NLP_TRAIN_THREADS": "two"}
    done = subprocess.run(
        [sys.executable, "-c", "import scrm.nlp.training, scrm.cli"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
