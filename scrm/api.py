"""The REST API under /api/v1: thin routers over the domain services."""

from __future__ import annotations

from fastapi import APIRouter

from scrm.automation.endpoints import router as automation
from scrm.casework.endpoints import router as casework
from scrm.contact.endpoints import router as contacts
from scrm.conversation.endpoints import router as conversations
from scrm.nlp.endpoints import router as triage
from scrm.sla.endpoints import router as sla
from scrm.store.endpoints import router as stores
from scrm.workspace.endpoints import router as workspace
from scrm.workspace.wechat_tools_endpoints import router as wechat_tools

router = APIRouter(prefix="/api/v1")
router.include_router(conversations)
router.include_router(contacts)
router.include_router(workspace)
router.include_router(triage)
router.include_router(automation)
router.include_router(sla)
router.include_router(casework)
router.include_router(stores)
router.include_router(wechat_tools)
