"""ORM models, one file per table. Importing this package registers every table."""

from scrm.models.api_token import ApiToken
from scrm.models.audit_log import AuditLog
from scrm.models.automation_rule import AutomationRule
from scrm.models.brand import Brand
from scrm.models.canned_reply import CannedReply
from scrm.models.case_task import CaseTask
from scrm.models.channel_account import ChannelAccount
from scrm.models.channel_rate_limit import ChannelRateLimit
from scrm.models.channel_token import ChannelToken
from scrm.models.contact import Contact
from scrm.models.contact_account_state import ContactAccountState
from scrm.models.contact_identity import ContactIdentity
from scrm.models.conversation import Conversation
from scrm.models.conversation_activity import ConversationActivity
from scrm.models.inbound_event import InboundEvent
from scrm.models.job import Job
from scrm.models.member import Member
from scrm.models.membership import Membership
from scrm.models.message import Message
from scrm.models.order import Order
from scrm.models.outbox_message import OutboxMessage
from scrm.models.rule_firing import RuleFiring
from scrm.models.sla_calendar import SlaCalendar
from scrm.models.sla_event import SlaEvent
from scrm.models.sla_policy import SlaPolicy
from scrm.models.sla_timer import SlaTimer
from scrm.models.store import Store
from scrm.models.team import Team
from scrm.models.team_desk import TeamDesk
from scrm.models.team_member import TeamMember
from scrm.models.triage_correction import TriageCorrection
from scrm.models.user import User
from scrm.models.user_session import UserSession
from scrm.models.workspace import Workspace

__all__ = [
    "ApiToken",
    "AuditLog",
    "AutomationRule",
    "Brand",
    "CannedReply",
    "CaseTask",
    "ChannelAccount",
    "ChannelRateLimit",
    "ChannelToken",
    "Contact",
    "ContactAccountState",
    "ContactIdentity",
    "Conversation",
    "ConversationActivity",
    "InboundEvent",
    "Job",
    "Member",
    "Membership",
    "Message",
    "Order",
    "OutboxMessage",
    "RuleFiring",
    "SlaCalendar",
    "SlaEvent",
    "SlaPolicy",
    "SlaTimer",
    "Store",
    "Team",
    "TeamDesk",
    "TeamMember",
    "TriageCorrection",
    "User",
    "UserSession",
    "Workspace",
]
