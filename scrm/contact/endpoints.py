from __future__ import annotations

import tempfile
from typing import Annotated

from fastapi import APIRouter, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from scrm.contact import imports, service
from scrm.contact.schemas import (
    ContactDetail,
    ContactIn,
    ContactOut,
    IdentityOut,
    ImportReport,
    MembershipOut,
    OrderOut,
)
from scrm.errors import Invalid, PayloadTooLarge
from scrm.kit.pagination import decode_cursor, encode_cursor
from scrm.models import Contact
from scrm.workspace.auth import CurrentPrincipal, SupervisorPrincipal, get_db

router = APIRouter(tags=["contacts"])
MAX_IMPORT_BYTES = 512 * 1024 * 1024


def contact_out(c: Contact) -> ContactOut:
    return ContactOut(
        id=str(c.id),
        name=c.name,
        phone_masked=service.mask_phone(c.phone),
        member_no=c.member_no,
        city=c.city,
        gender=c.gender,
        followers=c.followers,
        tags=list(c.tags),
        opted_out=c.opted_out,
        created_at=c.created_at,
    )


@router.get("/contacts", summary="List or search contacts")
def list_contacts(
    request: Request,
    principal: CurrentPrincipal,
    q: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> dict[str, object]:
    before = decode_cursor(cursor)[1] if cursor else None
    with get_db(request).transaction(readonly=True) as session:
        rows = service.search(session, principal.workspace_id, query=q, limit=limit + 1, before_id=before)
        page = rows[:limit]
        items = [contact_out(c) for c in page]
    return {
        "items": items,
        "next_cursor": encode_cursor(0, page[-1].id) if len(rows) > limit and page else None,
    }


@router.post("/contacts", response_model=ContactOut, status_code=201)
def create_contact(request: Request, principal: CurrentPrincipal, body: ContactIn) -> ContactOut:
    with get_db(request).transaction() as session:
        return contact_out(service.create(session, principal.workspace_id, body))


@router.get(
    "/contacts/{contact_id}",
    response_model=ContactDetail,
    summary="A fan with identities, orders, membership",
)
def get_contact(request: Request, principal: CurrentPrincipal, contact_id: int) -> ContactDetail:
    ws = principal.workspace_id
    with get_db(request).transaction(readonly=True) as session:
        c = service.get(session, ws, contact_id)
        return ContactDetail(
            **contact_out(c).model_dump(),
            attributes=dict(c.attributes),
            identities=[
                IdentityOut(
                    namespace=i.namespace,
                    external_id=service.mask_phone(i.external_id) or ""
                    if i.namespace == "phone"
                    else i.external_id,
                    display_name=i.display_name,
                    subscribed=i.subscribed,
                )
                for i in service.identities(session, ws, c.id)
            ],
            orders=[
                OrderOut(
                    id=str(o.id),
                    source=o.source,
                    order_id=o.external_id,
                    kind=o.kind,
                    status=o.status,
                    amount_fen=o.amount_fen,
                    currency=o.currency,
                    placed_at=o.placed_at,
                    details=dict(o.details),
                )
                for o in service.orders(session, ws, c.id)
            ],
            memberships=[
                MembershipOut(
                    program=m.program, member_no=m.member_no, tier=m.tier, points_balance=m.points_balance
                )
                for m in service.memberships(session, ws, c.id)
            ],
        )


async def spool_upload(upload: UploadFile) -> tempfile.SpooledTemporaryFile[bytes]:
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    size = 0
    while chunk := await upload.read(1024 * 1024):
        size += len(chunk)
        if size > MAX_IMPORT_BYTES:
            spool.close()
            raise PayloadTooLarge("import file larger than 512 MiB; use `scrm import` for larger files")
        spool.write(chunk)
    spool.seek(0)
    return spool


async def _import(request: Request, principal_ws: int, kind: imports.Kind, file: UploadFile) -> ImportReport:
    if not file.filename:
        raise Invalid("file name missing", field="file")
    fmt = imports.detect_format(file.filename)
    spool = await spool_upload(file)
    try:
        return await run_in_threadpool(imports.run_import, get_db(request), principal_ws, kind, spool, fmt)
    finally:
        spool.close()


@router.post("/imports/orders", response_model=ImportReport, summary="Import orders/bookings (CSV or JSONL)")
async def import_orders(request: Request, principal: SupervisorPrincipal, file: UploadFile) -> ImportReport:
    return await _import(request, principal.workspace_id, "orders", file)


@router.post("/imports/contacts", response_model=ImportReport, summary="Import contacts (CSV or JSONL)")
async def import_contacts(request: Request, principal: SupervisorPrincipal, file: UploadFile) -> ImportReport:
    return await _import(request, principal.workspace_id, "contacts", file)
