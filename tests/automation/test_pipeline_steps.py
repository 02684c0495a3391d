"""A failing pipeline step never loses or doubles the message: the first attempt runs the steps
without savepoints and fails whole; the job runs again at once (same attempt) with every step
isolated, skips the broken one and records it, and the message still reaches the human queue with the other steps' work done."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from scrm import pipeline
from scrm.models import Conversation, ConversationActivity, Job, Message, SlaTimer
from tests.automation.helpers import deliver
from tests.helpers import run_jobs


def test_a_failing_step_is_retried_in_isolation_and_the_message_still_reaches_a_human(
    db, settings, workspace, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    seen: list[bool] = []

    def broken(ctx: pipeline.PipelineContext) -> None:
        seen.append(ctx.isolated)
        assert ctx.conversation is not None
        ctx.conversation.labels = [*ctx.conversation.labels, "half-done"]  # must not survive
        raise RuntimeError("the step has a bug")

    steps = sorted([*pipeline.steps(), (150, "broken", broken)], key=lambda s: s[0])
    monkeypatch.setattr(pipeline, "_STEPS", steps)
    monkeypatch.setattr(pipeline, "_last_failure", float("-inf"))

    deliver(db, workspace, "e1", "昨天 MU5137 上海飞成都，黑色双肩包落在 32C 座位上了")
    run_jobs(db, settings)

    assert seen == [False, True]  # first run without savepoints, the rerun (no backoff) isolated
    assert pipeline.isolate_steps(1)  # and, for a minute, first attempts too
    with db.transaction(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(Message)).scalar_one() == 1
        conv = s.execute(select(Conversation)).scalar_one()
        assert conv.status == "open" and "half-done" not in conv.labels
        failed = s.execute(
            select(ConversationActivity).where(ConversationActivity.kind == "step_failed")
        ).scalar_one()
        assert failed.data["step"] == "broken" and "the step has a bug" in failed.data["error"]
        # the steps around the broken one did their work: triage before it, SLA after it
        message = s.execute(select(Message)).scalar_one()
        assert message.triage["intent"] == "lost_item"
        assert s.execute(select(func.count()).select_from(SlaTimer)).scalar_one() >= 1
        job = s.execute(select(Job).where(Job.kind == "inbound.process")).scalar_one()
        assert job.status == "done" and job.attempts == 1  # rerun within the attempt


def test_a_step_that_succeeds_on_the_first_attempt_runs_once(db, settings, workspace, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: list[Any] = []

    def counting(ctx: pipeline.PipelineContext) -> None:
        seen.append(ctx.isolated)

    monkeypatch.setattr(pipeline, "_STEPS", [*pipeline.steps(), (999, "counting", counting)])
    monkeypatch.setattr(pipeline, "_last_failure", float("-inf"))
    deliver(db, workspace, "e1", "你好")
    run_jobs(db, settings)
    assert seen == [False]
    with db.transaction(readonly=True) as s:
        assert (
            s.execute(
                select(func.count())
                .select_from(ConversationActivity)
                .where(ConversationActivity.kind == "step_failed")
            ).scalar_one()
            == 0
        )
