"""The REST API under /api/v1: thin routers over the domain services."""

from __future__ import annotations

from fastapi import APIRouter

from scrm.contact.endpoints import router as contacts
from scrm.conversation.endpoints import router as conversations
from scrm.workspace.endpoints import router as workspace

router = APIRouter(prefix="/api/v1")
router.include_router(conversations)
router.include_router(contacts)
router.include_router(workspace)
