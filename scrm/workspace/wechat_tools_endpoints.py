"""REST: WeChat Official Account tools under ``/api/v1/channels/{id}/wechat/`` (admins only).

QR codes with a scene, the custom menu, fan tags. Each request loads the account of the
caller's workspace (another workspace's id is a 404), calls WeChat outside any database
transaction, and records changes in the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from scrm.channels.wechat.client import MAX_TEMP_QR_SECONDS
from scrm.config import Settings, get_settings
from scrm.workspace import wechat_tools as tools
from scrm.workspace.auth import AdminPrincipal, get_db
from scrm.workspace.schemas import Principal

router = APIRouter(prefix="/channels/{channel_id}/wechat", tags=["wechat tools"])

OpenId = Annotated[str, Field(min_length=1, max_length=64)]
TagId = Annotated[int, Path(ge=0, lt=2**31)]


class QrCodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scene: StrictInt | StrictStr = Field(
        description="An integer scene_id (temporary 1..4294967295, permanent 1..100000) or a "
        "scene_str of 1-64 characters."
    )
    temporary: StrictBool = True
    expire_seconds: StrictInt = Field(
        MAX_TEMP_QR_SECONDS, description="Temporary codes only: 60..2592000 (30 days)."
    )


class TagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(description="1-30 bytes of UTF-8 (a Chinese character is 3).")


class FansIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    openids: list[OpenId] = Field(min_length=1, max_length=tools.MAX_OPENIDS_PER_REQUEST)


def _settings(request: Request) -> Settings:
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


def _view(request: Request, principal: Principal, channel_id: int) -> Any:
    with get_db(request).transaction(readonly=True) as session:
        return tools.account(session, principal.workspace_id, channel_id)


def _audit(request: Request, principal: Principal, view: Any, action: str, data: dict[str, Any]) -> None:
    with get_db(request).transaction() as session:
        tools.audit_change(session, view, action, data, actor_id=principal.member_id)


@router.post("/qrcodes", status_code=201, summary="Create a QR code with a scene")
def create_qrcode(
    request: Request, principal: AdminPrincipal, channel_id: int, body: QrCodeIn
) -> dict[str, Any]:
    view = _view(request, principal, channel_id)
    code = tools.create_qrcode(
        view,
        _settings(request),
        scene=body.scene,
        temporary=body.temporary,
        expire_seconds=body.expire_seconds,
    )
    _audit(
        request,
        principal,
        view,
        "wechat.qrcode_created",
        {"scene": body.scene, "temporary": body.temporary, "expire_seconds": code.expire_seconds},
    )
    return code.as_dict()


@router.get("/menu", summary="The custom menu (menu is null when none is set)")
def get_menu(request: Request, principal: AdminPrincipal, channel_id: int) -> dict[str, Any]:
    return tools.get_menu(_view(request, principal, channel_id), _settings(request))


@router.put("/menu", summary='Replace the custom menu: {"button": [...]}')
def set_menu(
    request: Request,
    principal: AdminPrincipal,
    channel_id: int,
    body: Annotated[dict[str, Any], Body(description='{"button": [...]}, WeChat\'s menu/create format')],
) -> dict[str, Any]:
    view = _view(request, principal, channel_id)
    buttons = tools.set_menu(view, _settings(request), body)
    _audit(request, principal, view, "wechat.menu_set", {"buttons": len(buttons)})
    return {"button": buttons}


@router.delete("/menu", status_code=204, summary="Remove the custom menu")
def delete_menu(request: Request, principal: AdminPrincipal, channel_id: int) -> Response:
    view = _view(request, principal, channel_id)
    tools.delete_menu(view, _settings(request))
    _audit(request, principal, view, "wechat.menu_deleted", {})
    return Response(status_code=204)


@router.get("/tags", summary="The account's fan tags")
def list_tags(request: Request, principal: AdminPrincipal, channel_id: int) -> list[dict[str, Any]]:
    return tools.list_tags(_view(request, principal, channel_id), _settings(request))


@router.post("/tags", status_code=201, summary="Create a fan tag")
def create_tag(request: Request, principal: AdminPrincipal, channel_id: int, body: TagIn) -> dict[str, Any]:
    view = _view(request, principal, channel_id)
    tag = tools.create_tag(view, _settings(request), body.name)
    _audit(request, principal, view, "wechat.tag_created", {"tag_id": tag["id"], "name": tag["name"]})
    return tag


@router.patch("/tags/{tag_id}", summary="Rename a fan tag")
def rename_tag(
    request: Request, principal: AdminPrincipal, channel_id: int, tag_id: TagId, body: TagIn
) -> dict[str, Any]:
    view = _view(request, principal, channel_id)
    tag = tools.rename_tag(view, _settings(request), tag_id, body.name)
    _audit(request, principal, view, "wechat.tag_renamed", {"tag_id": tag_id, "name": tag["name"]})
    return tag


@router.delete("/tags/{tag_id}", status_code=204, summary="Delete a fan tag")
def delete_tag(request: Request, principal: AdminPrincipal, channel_id: int, tag_id: TagId) -> Response:
    view = _view(request, principal, channel_id)
    tools.delete_tag(view, _settings(request), tag_id)
    _audit(request, principal, view, "wechat.tag_deleted", {"tag_id": tag_id})
    return Response(status_code=204)


@router.get("/tags/{tag_id}/fans", summary="One page of a tag's fans (openids)")
def fans_of_tag(
    request: Request,
    principal: AdminPrincipal,
    channel_id: int,
    tag_id: TagId,
    next_openid: Annotated[str, Query(max_length=64)] = "",
) -> dict[str, Any]:
    return tools.fans_of_tag(_view(request, principal, channel_id), _settings(request), tag_id, next_openid)


@router.post("/tags/{tag_id}/fans", summary="Tag fans (up to 1000 openids; sent 50 at a time)")
def tag_fans(
    request: Request, principal: AdminPrincipal, channel_id: int, tag_id: TagId, body: FansIn
) -> dict[str, Any]:
    view = _view(request, principal, channel_id)
    n = tools.tag_fans(view, _settings(request), tag_id, body.openids)
    _audit(request, principal, view, "wechat.fans_tagged", {"tag_id": tag_id, "fans": n})
    return {"tag_id": tag_id, "tagged": n}


@router.delete("/tags/{tag_id}/fans", summary="Untag fans (JSON body {openids})")
def untag_fans(
    request: Request, principal: AdminPrincipal, channel_id: int, tag_id: TagId, body: FansIn
) -> dict[str, Any]:
    view = _view(request, principal, channel_id)
    n = tools.untag_fans(view, _settings(request), tag_id, body.openids)
    _audit(request, principal, view, "wechat.fans_untagged", {"tag_id": tag_id, "fans": n})
    return {"tag_id": tag_id, "untagged": n}


@router.get("/fans/{openid}/tags", summary="A fan's tags (tags/getidlist)")
def tags_of_fan(
    request: Request,
    principal: AdminPrincipal,
    channel_id: int,
    openid: Annotated[str, Path(min_length=1, max_length=64)],
) -> dict[str, Any]:
    return tools.tags_of_fan(_view(request, principal, channel_id), _settings(request), openid)
