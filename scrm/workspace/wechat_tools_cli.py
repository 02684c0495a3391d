"""``scrm channels qrcode|menu|tags …``: a WeChat Official Account's QR codes, menu and fan tags.

Every command names the workspace and the account (``--workspace SLUG --account ID``); an
account of another workspace, or not a WeChat one, is refused like a missing one. Output is
JSON on stdout; errors are one line on stderr and exit code 2 (WeChat's errcode included).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from scrm.channels.wechat.client import MAX_TEMP_QR_SECONDS

app = typer.Typer()  # nameless: its groups join `scrm channels`
qrcode_app = typer.Typer(
    help="WeChat QR codes with a scene (follow / scan events carry it).", no_args_is_help=True
)
menu_app = typer.Typer(help="WeChat custom menu.", no_args_is_help=True)
tags_app = typer.Typer(help="WeChat fan tags.", no_args_is_help=True)
app.add_typer(qrcode_app, name="qrcode")
app.add_typer(menu_app, name="menu")
app.add_typer(tags_app, name="tags")

MAX_MENU_FILE = 1024 * 1024
CLI_ACTOR = "cli"

Workspace = Annotated[str, typer.Option(help="Workspace slug.")]
Account = Annotated[int, typer.Option(help="Channel account id of the WeChat Official Account.")]
Yes = Annotated[bool, typer.Option("--yes", help="Confirm (the change cannot be undone).")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _run(fn: Callable[[], Any]) -> None:
    """Run `fn` with the CLI's error handling (AppError / ValueError → one line, exit 2)."""
    from scrm.cli import friendly

    result = friendly(fn)()
    if result is not None:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))


def _account(workspace: str, account: int) -> tuple[Any, Any]:
    from scrm.cli import _db
    from scrm.workspace import service as ws_service
    from scrm.workspace import wechat_tools as tools

    db = _db()
    with db.transaction(readonly=True) as session:
        ws = ws_service.get_workspace(session, workspace)
        return db, tools.account(session, ws.id, account)


def _audit(db: Any, view: Any, action: str, data: dict[str, Any]) -> None:
    from scrm.workspace import wechat_tools as tools

    with db.transaction() as session:
        tools.audit_change(session, view, action, data, actor_label=CLI_ACTOR)


def _settings() -> Any:
    from scrm.config import get_settings

    return get_settings()


def parse_scene(scene: str, *, as_string: bool) -> int | str:
    """Digits are a scene_id unless `as_string`; anything else is a scene_str."""
    if not as_string and scene.isascii() and scene.isdigit():
        return int(scene)
    return scene


# -- qrcode -------------------------------------------------------------------------------------


@qrcode_app.command("create")
def qrcode_create(
    workspace: Workspace,
    account: Account,
    scene: Annotated[str, typer.Option(help="Scene: digits = scene_id, else scene_str (1-64 chars).")],
    string: Annotated[bool, typer.Option("--string", help="Send digits as a scene_str.")] = False,
    permanent: Annotated[bool, typer.Option("--permanent", help="A permanent code (max 100,000).")] = False,
    expire_seconds: Annotated[
        int, typer.Option(help="Temporary codes: lifetime, 60..2592000 seconds.")
    ] = MAX_TEMP_QR_SECONDS,
) -> None:
    """Create a QR code; prints ticket, url, image_url and expires_at."""
    from scrm.workspace import wechat_tools as tools

    def run() -> dict[str, Any]:
        db, view = _account(workspace, account)
        value = parse_scene(scene, as_string=string)
        code = tools.create_qrcode(
            view, _settings(), scene=value, temporary=not permanent, expire_seconds=expire_seconds
        )
        _audit(db, view, "wechat.qrcode_created", {"scene": value, "temporary": not permanent})
        return code.as_dict()

    _run(run)


# -- menu ---------------------------------------------------------------------------------------


def read_menu_file(file: Path) -> Any:
    """The JSON in `file` ("-" reads stdin), or a clear error: size, encoding, syntax."""
    raw = sys.stdin.buffer.read(MAX_MENU_FILE + 1) if str(file) == "-" else None
    if raw is None:
        with file.open("rb") as handle:  # FileNotFoundError → friendly message
            raw = handle.read(MAX_MENU_FILE + 1)
    if len(raw) > MAX_MENU_FILE:
        raise _fail(f"{file}: larger than {MAX_MENU_FILE // 1024} KB, not a menu")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _fail(f"{file}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _fail(f"{file}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


@menu_app.command("get")
def menu_get(workspace: Workspace, account: Account) -> None:
    """Print the custom menu ("menu": null when none is set)."""
    from scrm.workspace import wechat_tools as tools

    def run() -> dict[str, Any]:
        _db, view = _account(workspace, account)
        return tools.get_menu(view, _settings())

    _run(run)


@menu_app.command("set")
def menu_set(
    file: Annotated[
        Path, typer.Argument(help='JSON file {"button": [...]} (or the bare list); - for stdin.')
    ],
    workspace: Workspace,
    account: Account,
) -> None:
    """Replace the custom menu (checked in full before WeChat sees it)."""
    from scrm.workspace import wechat_tools as tools

    def run() -> dict[str, Any]:
        body = read_menu_file(file)
        db, view = _account(workspace, account)
        buttons = tools.set_menu(view, _settings(), body)
        _audit(db, view, "wechat.menu_set", {"buttons": len(buttons)})
        return {"button": buttons}

    _run(run)


@menu_app.command("delete")
def menu_delete(workspace: Workspace, account: Account, yes: Yes = False) -> None:
    """Remove the custom menu."""
    from scrm.workspace import wechat_tools as tools

    def run() -> dict[str, Any]:
        if not yes:
            raise _fail("deleting the menu cannot be undone: pass --yes")
        db, view = _account(workspace, account)
        tools.delete_menu(view, _settings())
        _audit(db, view, "wechat.menu_deleted", {})
        return {"deleted": True}

    _run(run)


# -- tags ---------------------------------------------------------------------------------------


@tags_app.command("list")
def tags_list(workspace: Workspace, account: Account) -> None:
    """The account's tags with their fan counts."""
    from scrm.workspace import wechat_tools as tools

    _run(lambda: tools.list_tags(_account(workspace, account)[1], _settings()))


@tags_app.command("create")
def tags_create(
    name: Annotated[str, typer.Argument(help="1-30 bytes (a Chinese character is 3).")],
    workspace: Workspace,
    account: Account,
) -> None:
    """Create a tag."""
    from scrm.workspace import wechat_tools as tools

    def run() -> dict[str, Any]:
        db, view = _account(workspace, account)
        tag = tools.create_tag(view, _settings(), name)
        _audit(db, view, "wechat.tag_created", {"tag_id": tag["id"], "name": tag["name"]})
        return tag

    _run(run)


@tags_app.command("rename")
def tags_rename(
    tag_id: Annotated[int, typer.Argument(help="Tag id.")],
    name: Annotated[str, typer.Argument(help="New name, 1-30 bytes.")],
    workspace: Workspace,
    account: Account,
) -> None:
    """Rename a tag (not 0, 1, 2: WeChat's own)."""
    from scrm.workspace import wechat_tools as tools

    def run() -> dict[str, Any]:
        db, view = _account(workspace, account)
        tag = tools.rename_tag(view, _settings(), tag_id, name)
        _audit(db, view, "wechat.tag_renamed", {"tag_id": tag_id, "name": tag["name"]})
        return tag

    _run(run)


@tags_app.command("delete")
def tags_delete(
    tag_id: Annotated[int, typer.Argument(help="Tag id.")],
    workspace: Workspace,
    account: Account,
    yes: Yes = False,
) -> None:
    """Delete a tag (its fans lose it)."""
    from scrm.workspace import wechat_tools as tools

    def run() -> dict[str, Any]:
        if not yes:
            raise _fail("deleting a tag cannot be undone: pass --yes")
        db, view = _account(workspace, account)
        tools.delete_tag(view, _settings(), tag_id)
        _audit(db, view, "wechat.tag_deleted", {"tag_id": tag_id})
        return {"deleted": tag_id}

    _run(run)


OpenIds = Annotated[list[str], typer.Argument(help="Openids of the fans (up to 1000).")]


@tags_app.command("add")
def tags_add(
    tag_id: Annotated[int, typer.Argument(help="Tag id.")],
    openids: OpenIds,
    workspace: Workspace,
    account: Account,
) -> None:
    """Tag fans (batchtagging, 50 per call)."""
    from scrm.workspace import wechat_tools as tools

    def run() -> dict[str, Any]:
        db, view = _account(workspace, account)
        n = tools.tag_fans(view, _settings(), tag_id, openids)
        _audit(db, view, "wechat.fans_tagged", {"tag_id": tag_id, "fans": n})
        return {"tag_id": tag_id, "tagged": n}

    _run(run)


@tags_app.command("remove")
def tags_remove(
    tag_id: Annotated[int, typer.Argument(help="Tag id.")],
    openids: OpenIds,
    workspace: Workspace,
    account: Account,
) -> None:
    """Untag fans (batchuntagging, 50 per call)."""
    from scrm.workspace import wechat_tools as tools

    def run() -> dict[str, Any]:
        db, view = _account(workspace, account)
        n = tools.untag_fans(view, _settings(), tag_id, openids)
        _audit(db, view, "wechat.fans_untagged", {"tag_id": tag_id, "fans": n})
        return {"tag_id": tag_id, "untagged": n}

    _run(run)


@tags_app.command("fan")
def tags_fan(
    openid: Annotated[str, typer.Argument(help="The fan's openid.")], workspace: Workspace, account: Account
) -> None:
    """A fan's tags (tags/getidlist)."""
    from scrm.workspace import wechat_tools as tools

    _run(lambda: tools.tags_of_fan(_account(workspace, account)[1], _settings(), openid))


@tags_app.command("fans")
def tags_fans(
    tag_id: Annotated[int, typer.Argument(help="Tag id.")],
    workspace: Workspace,
    account: Account,
    next_openid: Annotated[str, typer.Option("--next", help="Cursor from the previous page.")] = "",
) -> None:
    """One page of a tag's fans."""
    from scrm.workspace import wechat_tools as tools

    _run(lambda: tools.fans_of_tag(_account(workspace, account)[1], _settings(), tag_id, next_openid))
