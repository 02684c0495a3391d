"""REST: a workspace's stores, the nearest one to a point, and the stores import."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from scrm.contact.endpoints import spool_upload
from scrm.contact.imports import detect_format
from scrm.contact.schemas import ImportReport
from scrm.errors import Invalid, NotFound
from scrm.kit.geo import valid_point
from scrm.models import Store
from scrm.store import imports, service
from scrm.store.schemas import NearestOut, StoreOut
from scrm.workspace.auth import CurrentPrincipal, SupervisorPrincipal, get_db

router = APIRouter(tags=["stores"])


def store_out(s: Store) -> StoreOut:
    return StoreOut(
        id=str(s.id),
        code=s.code,
        name=s.name,
        city=s.city,
        address=s.address,
        hours=s.hours,
        phone=s.phone,
        latitude=s.latitude,
        longitude=s.longitude,
        active=s.active,
    )


@router.get("/stores", summary="The workspace's stores")
def list_stores(request: Request, principal: CurrentPrincipal) -> dict[str, list[StoreOut]]:
    with get_db(request).transaction(readonly=True) as session:
        return {"items": [store_out(s) for s in service.list_stores(session, principal.workspace_id)]}


@router.get("/stores/nearest", response_model=NearestOut, summary="The active store nearest to a point")
def nearest_store(
    request: Request,
    principal: CurrentPrincipal,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lng: Annotated[float, Query(ge=-180, le=180)],
) -> NearestOut:
    point = valid_point(lat, lng)
    if point is None:
        raise Invalid("lat and lng must be finite coordinates", field="lat")
    with get_db(request).transaction(readonly=True) as session:
        found = service.nearest(session, principal.workspace_id, *point)
        if found is None:
            raise NotFound("this workspace has no active stores")
        return NearestOut(**store_out(found.store).model_dump(), distance_km=round(found.distance_km, 2))


@router.post("/imports/stores", response_model=ImportReport, summary="Import stores (CSV or JSONL)")
async def import_stores(request: Request, principal: SupervisorPrincipal, file: UploadFile) -> ImportReport:
    if not file.filename:
        raise Invalid("file name missing", field="file")
    fmt = detect_format(file.filename)
    spool = await spool_upload(file)
    try:
        return await run_in_threadpool(
            imports.run_import, get_db(request), principal.workspace_id, spool, fmt
        )
    finally:
        spool.close()
