"""Skills on every assignment path: the conversation's required skills (set by the rule action
or the API) decide who may take it in the pipeline, queue drains, reassignment when an agent
goes away and a rule naming a member; with nobody skilled it waits in the queue, with the
reason. Also the queue's reasons, and capacity under concurrent workers with skills."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update

from scrm import pipeline
from scrm.automation import actions as rule_actions
from scrm.automation import service as rules
from scrm.conversation import assignment
from scrm.db import Database
from scrm.errors import Invalid
from scrm.models import AutomationRule, Conversation, ConversationActivity, Member, RuleFiring
from scrm.workspace import service as ws_service
from tests.automation.helpers import deliver
from tests.conftest import Workspace
from tests.conversation import test_assignment as base
from tests.helpers import run_concurrently, run_jobs


def agent(
    db: Database,
    ws: Workspace,
    name: str,
    skills: list[str] | None = None,
    *,
    capacity: int = 5,
    availability: str = "online",
    team: str = "service",
    senior: bool = False,
) -> int:
    with db.transaction() as s:
        user = ws_service.create_user(s, f"{name}@{ws.slug}.test", "password123", name)
        m = ws_service.add_member(
            s, ws.id, user, "agent", capacity=capacity, skills=skills or [], is_senior=senior
        )
        m.availability = availability
        ws_service.add_to_team(s, ws.id, ws.team_ids[team], m.id)
        return m.id


def needing(db: Database, ws: Workspace, fan: str, skills: list[str], **kw: Any) -> int:
    """An open, unassigned conversation that requires `skills`."""
    conv_id = base.open_conversation(db, ws, fan, **kw)
    with db.transaction() as s:
        conv = s.get(Conversation, (ws.id, conv_id))
        assert conv is not None
        assignment.require_skills(s, conv, skills)
    return conv_id


def assign(db: Database, ws: Workspace, conv_id: int, *, with_contact: bool = False) -> int | None:
    from scrm.models import Contact

    with db.transaction() as s:
        conv = s.get(Conversation, (ws.id, conv_id))
        assert conv is not None
        contact = s.get(Contact, (ws.id, conv.contact_id)) if with_contact else None
        return assignment.assign(s, conv, contact=contact)


def owner(db: Database, ws: Workspace, conv_id: int) -> int | None:
    return base.owner(db, ws, conv_id)


def reasons(db: Database, ws: Workspace) -> dict[int, str]:
    with db.transaction(readonly=True) as s:
        return assignment.queue_reasons(s, ws.id, assignment.unassigned_queue(s, ws.id))


def set_availability(db: Database, ws: Workspace, member_id: int, value: str) -> int:
    with db.transaction() as s:
        return assignment.set_availability(s, ws.id, member_id, value)


@pytest.fixture(autouse=True)
def _fresh_pools() -> None:
    assignment._BUSY_POOLS.clear()
    assignment._POOLS.clear()


def test_skills_are_cleaned_and_bad_ones_refused(db, workspace) -> None:  # type: ignore[no-untyped-def]
    conv_id = base.open_conversation(db, workspace, "fan")
    with db.transaction() as s:
        conv = s.get(Conversation, (workspace.id, conv_id))
        assert conv is not None
        assert assignment.require_skills(s, conv, ["  Lang:EN ", "lang:en", "product:  行李"]) == [
            "lang:en",
            "product: 行李",
        ]
        # a rule adds to the requirement; the API replaces it
        assert assignment.require_skills(s, conv, ["channel:weibo"]) == [
            "channel:weibo",
            "lang:en",
            "product: 行李",
        ]
        assert assignment.require_skills(s, conv, ["lang:en"], replace=True) == ["lang:en"]
    for bad, reason in [
        ("lang:en", "list of strings"),
        ([""], "blank"),
        (["   "], "blank"),
        ([1], "is a string"),
        ([None], "is a string"),
        (["x" * 41], "at most 40"),
        (["a,b"], "commas"),
        (["a\x00b"], "control characters"),
        ([f"s{i}" for i in range(21)], "at most 20"),
    ]:
        with pytest.raises(Invalid) as exc, db.transaction() as s:
            conv = s.get(Conversation, (workspace.id, conv_id))
            assert conv is not None
            assignment.require_skills(s, conv, bad)  # type: ignore[arg-type]
        assert reason in exc.value.message, (bad, exc.value.message)
    with db.transaction(readonly=True) as s:
        conv = s.get(Conversation, (workspace.id, conv_id))
        assert conv is not None and conv.required_skills == ["lang:en"]  # nothing bad stored
        kinds = s.execute(
            select(func.count()).where(
                ConversationActivity.conversation_id == conv_id,
                ConversationActivity.kind == "skills_required",
            )
        ).scalar_one()
        assert kinds == 3  # each change on the timeline, the repeat of the same set not


def test_the_skilled_agent_is_chosen_whatever_the_rotation(db, workspace) -> None:  # type: ignore[no-untyped-def]
    plain = sorted(agent(db, workspace, f"zh{i}") for i in range(3))
    english = agent(db, workspace, "en", ["lang:en"], capacity=10)
    for i in range(4):  # round robin, with and without the fan at hand (the pipeline's path)
        conv = needing(db, workspace, f"fan{i}", ["lang:en"])
        assert assign(db, workspace, conv, with_contact=bool(i % 2)) == english
    # least load as well; and a plain conversation still goes to anyone
    with db.transaction() as s:
        assignment.configure_desk(s, workspace.id, workspace.team_ids["service"], strategy="least_load")
    assert assign(db, workspace, needing(db, workspace, "fan9", ["lang:en"])) == english
    assert assign(db, workspace, base.open_conversation(db, workspace, "plain")) in plain
    # every required skill, not just one of them
    both = needing(db, workspace, "both", ["lang:en", "channel:weibo"])
    assert assign(db, workspace, both) is None
    assert reasons(db, workspace)[both] == "no_agent_with_skills"


def test_nobody_skilled_queues_with_the_reason_until_a_skilled_agent_comes_online(db, workspace) -> None:  # type: ignore[no-untyped-def]
    agent(db, workspace, "zh")  # online, no skills
    english = agent(db, workspace, "en", ["lang:en"], availability="offline")
    conv = needing(db, workspace, "fan", ["lang:en"])
    assert assign(db, workspace, conv, with_contact=True) is None
    assert owner(db, workspace, conv) is None
    assert reasons(db, workspace) == {conv: "no_skilled_agent_online"}
    # the skilled agent comes online: the queue is drained into their hands at once
    assert set_availability(db, workspace, english, "online") == 1
    assert owner(db, workspace, conv) == english


def test_the_pipeline_and_the_rule_action_never_give_a_skilled_conversation_to_the_unskilled(
    db, settings, workspace, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The audit's case: `assign {skills}` found nobody, and the pipeline's assignment step then
    assigned with no skill filter. Now the skills stay on the conversation and step 250 (and
    the queue) honour them."""
    monkeypatch.setattr(pipeline, "_STEPS", [s for s in pipeline._STEPS if s[1] != "triage"])
    with db.transaction() as s:  # the workspace's own agent is offline; one Chinese-only agent online
        s.execute(update(Member).where(Member.id == workspace.agent_member_id).values(availability="offline"))
    chinese = agent(db, workspace, "zh")
    english = agent(db, workspace, "en", ["lang:en"], availability="offline")
    with db.transaction() as s:
        rules.save_rule(
            s,
            workspace.id,
            {
                "name": "English speakers",
                "event": "message.received",
                "conditions": {"all": [{"field": "language", "op": "eq", "value": "en"}]},
                "actions": [{"type": "assign", "skills": [" Lang:EN ", "lang:en"]}],  # stored as lang:en
            },
        )
    deliver(db, workspace, "e1", "Hello, my bag was left on flight MU5137, can you help me please?")
    deliver(db, workspace, "e2", "你好，我的行李落在飞机上了", sender="fan-2")
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        convs = {c.fan_external_id: c for c in s.execute(select(Conversation)).scalars()}
        english_conv, chinese_conv = convs["fan-1"], convs["fan-2"]
        (stored,) = s.execute(select(AutomationRule)).scalars()
        assert stored.actions == [{"type": "assign", "skills": ["lang:en"]}]
        assert english_conv.required_skills == ["lang:en"]
        assert english_conv.assignee_id is None  # not the online Chinese-only agent
        assert chinese_conv.required_skills == [] and chinese_conv.assignee_id == chinese
        firing = s.execute(select(RuleFiring)).scalar_one()
        assert firing.actions == [
            {
                "type": "assign",
                "required_skills": ["lang:en"],
                "assignee_id": None,
                "queued": "no_skilled_agent_online",
            }
        ]
    assert reasons(db, workspace) == {english_conv.id: "no_skilled_agent_online"}
    set_availability(db, workspace, english, "online")
    assert owner(db, workspace, english_conv.id) == english


def test_a_drain_honours_skills_and_is_not_held_up_by_conversations_it_cannot_assign(db, workspace) -> None:  # type: ignore[no-untyped-def]
    plain = agent(db, workspace, "zh", capacity=10)
    blocked = [needing(db, workspace, f"ja{i}", ["lang:ja"]) for i in range(3)]  # oldest first
    waiting = [base.open_conversation(db, workspace, f"w{i}") for i in range(2)]
    with db.transaction() as s:
        # a page of 2: the first page is all conversations nobody can take
        assert assignment.drain_queue(s, workspace.id, limit=2) == 2
    assert [owner(db, workspace, c) for c in waiting] == [plain, plain]
    assert [owner(db, workspace, c) for c in blocked] == [None, None, None]
    assert set(reasons(db, workspace).values()) == {"no_agent_with_skills"}
    # a Japanese speaker is added to the team: the periodic rebalance hands them the queue
    japanese = agent(db, workspace, "ja", ["lang:ja"], capacity=2)
    from types import SimpleNamespace

    from scrm.automation.tasks import rebalance

    with db.transaction() as s:
        rebalance(SimpleNamespace(session=s, workspace_id=workspace.id), {})  # type: ignore[arg-type]
    assert [owner(db, workspace, c) for c in blocked] == [japanese, japanese, None]
    assert reasons(db, workspace) == {blocked[2]: "agents_at_capacity"}


def test_an_agent_going_away_hands_skilled_work_only_to_the_skilled(db, workspace) -> None:  # type: ignore[no-untyped-def]
    first = agent(db, workspace, "en1", ["lang:en"])
    plain = agent(db, workspace, "zh")
    english_conv = needing(db, workspace, "en-fan", ["lang:en"])
    plain_conv = base.open_conversation(db, workspace, "zh-fan")
    assert assign(db, workspace, english_conv) == first
    with db.transaction() as s:  # the plain one to the English agent too (say, by hand)
        s.execute(update(Conversation).where(Conversation.id == plain_conv).values(assignee_id=first))
    assert set_availability(db, workspace, first, "away") == 2
    assert owner(db, workspace, plain_conv) == plain
    assert owner(db, workspace, english_conv) is None  # not to the agent without the skill
    assert reasons(db, workspace) == {english_conv: "no_skilled_agent_online"}
    second = agent(db, workspace, "en2", ["lang:en", "product:baggage"], availability="offline")
    set_availability(db, workspace, second, "online")
    assert owner(db, workspace, english_conv) == second
    # a supervisor's or a rule's reassignment (escalation) honours the skills too
    with db.transaction() as s:
        conv = s.get(Conversation, (workspace.id, english_conv))
        assert conv is not None
        assert assignment.reassign(s, conv, reason="escalation") is None  # nobody else has lang:en
    assert owner(db, workspace, english_conv) is None


def test_queue_reasons(db, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        assignment.configure_desk(s, workspace.id, workspace.team_ids["lost"], auto_assign=False)
    held = base.open_conversation(db, workspace, "held", team="lost")
    nobody = base.open_conversation(db, workspace, "nobody")
    assert reasons(db, workspace) == {held: "auto_assign_off", nobody: "nobody_online"}
    busy = agent(db, workspace, "busy", ["lang:en"], capacity=1)
    assert assign(db, workspace, needing(db, workspace, "first", ["lang:en"])) == busy
    unknown = needing(db, workspace, "ja", ["lang:ja"])
    full = needing(db, workspace, "en", ["lang:en"])
    offline = agent(db, workspace, "weibo", ["channel:weibo"], availability="offline")
    off = needing(db, workspace, "wb", ["channel:weibo"])
    got = reasons(db, workspace)
    assert got[held] == "auto_assign_off"
    assert got[nobody] == "agents_at_capacity"  # the only online agent is full
    assert got[unknown] == "no_agent_with_skills"
    assert got[full] == "agents_at_capacity"
    assert got[off] == "no_skilled_agent_online"
    with db.transaction() as s:
        s.execute(update(Member).where(Member.id == busy).values(capacity=5))
        s.execute(update(Member).where(Member.id == offline).values(is_active=False))
    got = reasons(db, workspace)
    assert got[full] == "waiting" and got[nobody] == "waiting"  # room now: the next round takes them
    assert got[off] == "no_agent_with_skills"  # an inactive member does not count
    assert set(got.values()) <= set(assignment.QUEUE_REASONS)


def test_concurrent_workers_with_skills_never_exceed_capacity_nor_pick_the_unskilled(
    db, workspace, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    capacity = {agent(db, workspace, f"en{i}", ["lang:en"], capacity=c): c for i, c in enumerate((3, 2, 4))}
    plain = agent(db, workspace, "zh", capacity=50)
    convs = [needing(db, workspace, f"f{i}", ["lang:en"]) for i in range(24)]
    base.stale_candidates(monkeypatch, seed=7)  # every worker sees its own stale loads

    def work(i: int) -> None:
        for cid in convs[i::8]:
            assign(db, workspace, cid)

    run_concurrently(work, 8)
    with db.transaction(readonly=True) as s:
        loads = dict(
            s.execute(select(Conversation.assignee_id, func.count()).group_by(Conversation.assignee_id)).all()
        )
    assert {m: loads.get(m, 0) for m in capacity} == capacity
    assert plain not in loads
    assert loads[None] == 24 - sum(capacity.values())


# -- the rule action `assign {member?, skills?}` ---------------------------------------------------
def run_assign_action(db: Database, ws: Workspace, conv_id: int, action: dict[str, Any]) -> dict[str, Any]:
    """The action function itself, as a fired rule runs it."""
    from scrm.models import Contact

    with db.transaction() as s:
        conv = s.get(Conversation, (ws.id, conv_id))
        assert conv is not None
        ctx = rule_actions.ActionContext(
            session=s,
            workspace_id=ws.id,
            event="message.received",
            trigger_key="t",
            rule_id=1,
            rule_name="VIP desk",
            conversation=conv,
            contact=s.get(Contact, (ws.id, conv.contact_id)),
            account=None,
            recipient=conv.fan_external_id,
        )
        return rule_actions.run_action(ctx, {"type": "assign", **action})


def test_assign_action_with_a_team_skills_and_a_named_member(db, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        workspace.team_ids["vip"] = ws_service.create_team(s, workspace.id, "vip", "贵宾", "service").id
    agent(db, workspace, "service-en", ["lang:en"])  # in the service team, not the VIP team
    vip_plain = agent(db, workspace, "vip-zh", team="vip")
    vip_en = agent(db, workspace, "vip-en", ["lang:en"], team="vip", capacity=1)
    named = agent(db, workspace, "named", ["lang:en"], team="vip")
    # team (routed earlier) + skills: the VIP team's English speaker
    conv = base.open_conversation(db, workspace, "v1", team="vip")
    got = run_assign_action(db, workspace, conv, {"skills": ["lang:en"]})
    assert got == {"required_skills": ["lang:en"], "assignee_id": str(vip_en)}
    # vip_en is now full: the next English VIP conversation goes to the other skilled one
    conv2 = base.open_conversation(db, workspace, "v2", team="vip")
    assert run_assign_action(db, workspace, conv2, {"skills": ["lang:en"]})["assignee_id"] == str(named)
    # a named member who can take it gets it, also from another agent
    conv3 = base.open_conversation(db, workspace, "v3", team="vip")
    assert assign(db, workspace, conv3) == vip_plain
    got = run_assign_action(db, workspace, conv3, {"member": str(named)})
    assert got == {"member": str(named), "assignee_id": str(named)}
    assert owner(db, workspace, conv3) == named
    with db.transaction(readonly=True) as s:
        data = s.execute(
            select(ConversationActivity.data)
            .where(ConversationActivity.conversation_id == conv3, ConversationActivity.kind == "assigned")
            .order_by(ConversationActivity.id)
        ).scalars()
        assert [d["assignee_id"] for d in data] == [str(vip_plain), str(named)]


@pytest.mark.parametrize("why", ["not_online", "at_capacity", "missing_skills", "inactive", "no_such_member"])
def test_assign_action_falls_back_when_the_named_member_cannot_take_it(db, workspace, why) -> None:  # type: ignore[no-untyped-def]
    named = agent(
        db,
        workspace,
        "named",
        ["lang:en"] if why != "missing_skills" else [],
        capacity=0 if why == "at_capacity" else 5,
        # (no_such_member: the rule names someone else; this one is away, out of the way)
        availability="away" if why in ("not_online", "no_such_member") else "online",
    )
    if why == "inactive":
        with db.transaction() as s:
            s.execute(update(Member).where(Member.id == named).values(is_active=False))
    other = agent(db, workspace, "other", ["lang:en"])
    member = "424242" if why == "no_such_member" else str(named)
    # unassigned: the named member is refused, someone else with the skills takes it
    conv = base.open_conversation(db, workspace, "fan")
    got = run_assign_action(db, workspace, conv, {"member": member, "skills": ["lang:en"]})
    assert got["member_refused"] == why and got["assignee_id"] == str(other)
    assert owner(db, workspace, conv) == other
    # already assigned: it stays with its agent
    got = run_assign_action(db, workspace, conv, {"member": member})
    assert got["member_refused"] == why and got["assignee_id"] == str(other)
    assert owner(db, workspace, conv) == other
    # nobody else can take it either: it waits, with the reason
    set_availability(db, workspace, other, "offline")  # hands `conv` on: to the queue
    got = run_assign_action(db, workspace, conv, {"member": member})
    assert got["member_refused"] == why and got["assignee_id"] is None
    assert got["queued"] in assignment.QUEUE_REASONS
    assert owner(db, workspace, conv) is None


def test_assign_action_member_that_is_not_a_number_is_refused_not_a_crash(db, workspace) -> None:  # type: ignore[no-untyped-def]
    other = agent(db, workspace, "other")
    conv = base.open_conversation(db, workspace, "fan")
    got = run_assign_action(db, workspace, conv, {"member": "alice"})
    assert got == {"member": "alice", "member_refused": "no_such_member", "assignee_id": str(other)}


def test_a_named_member_is_never_filled_past_capacity_by_concurrent_rules(db, workspace) -> None:  # type: ignore[no-untyped-def]
    named = agent(db, workspace, "named", capacity=3)
    convs = [base.open_conversation(db, workspace, f"f{i}") for i in range(16)]
    with db.transaction() as s:  # no automatic fall-back: only the named member could take them
        assignment.configure_desk(s, workspace.id, workspace.team_ids["service"], auto_assign=False)

    def work(i: int) -> None:
        for cid in convs[i::8]:
            with db.transaction() as s:
                conv = s.get(Conversation, (workspace.id, cid))
                assert conv is not None
                assignment.assign_member(s, conv, named, reason="rule:x")

    run_concurrently(work, 8)
    with db.transaction(readonly=True) as s:
        taken = s.execute(select(func.count()).where(Conversation.assignee_id == named)).scalar_one()
    assert taken == 3
