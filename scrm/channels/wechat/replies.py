"""Passive reply bodies (reference §1.4): the XML answered in the response to a push."""

from __future__ import annotations

import re
from dataclasses import dataclass

# XML 1.0 forbids most control characters even inside CDATA; drop them rather than emit
# a body WeChat cannot parse (the fan would see "该公众号暂时无法提供服务").
_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
MAX_NEWS_ARTICLES = 8


def cdata(value: str) -> str:
    value = _INVALID_XML_CHARS.sub("", value)
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


@dataclass(frozen=True, slots=True)
class TextReply:
    content: str


@dataclass(frozen=True, slots=True)
class ImageReply:
    media_id: str


@dataclass(frozen=True, slots=True)
class VoiceReply:
    media_id: str


@dataclass(frozen=True, slots=True)
class VideoReply:
    media_id: str
    title: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class MusicReply:
    title: str = ""
    description: str = ""
    music_url: str = ""
    hq_music_url: str = ""
    thumb_media_id: str = ""


@dataclass(frozen=True, slots=True)
class Article:
    title: str
    description: str = ""
    pic_url: str = ""
    url: str = ""


@dataclass(frozen=True, slots=True)
class NewsReply:
    articles: tuple[Article, ...]


Reply = TextReply | ImageReply | VoiceReply | VideoReply | MusicReply | NewsReply


def render_reply_xml(reply: Reply, *, to_user: str, from_user: str, create_time: int) -> str:
    """The plaintext reply document, To/From already swapped by the caller."""
    head = (
        f"<ToUserName>{cdata(to_user)}</ToUserName><FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(create_time)}</CreateTime>"
    )
    if isinstance(reply, TextReply):
        body = f"<MsgType>{cdata('text')}</MsgType><Content>{cdata(reply.content)}</Content>"
    elif isinstance(reply, ImageReply):
        body = f"<MsgType>{cdata('image')}</MsgType><Image><MediaId>{cdata(reply.media_id)}</MediaId></Image>"
    elif isinstance(reply, VoiceReply):
        body = f"<MsgType>{cdata('voice')}</MsgType><Voice><MediaId>{cdata(reply.media_id)}</MediaId></Voice>"
    elif isinstance(reply, VideoReply):
        body = (
            f"<MsgType>{cdata('video')}</MsgType><Video><MediaId>{cdata(reply.media_id)}</MediaId>"
            f"<Title>{cdata(reply.title)}</Title><Description>{cdata(reply.description)}</Description></Video>"
        )
    elif isinstance(reply, MusicReply):
        body = (
            f"<MsgType>{cdata('music')}</MsgType><Music><Title>{cdata(reply.title)}</Title>"
            f"<Description>{cdata(reply.description)}</Description>"
            f"<MusicUrl>{cdata(reply.music_url)}</MusicUrl><HQMusicUrl>{cdata(reply.hq_music_url)}</HQMusicUrl>"
            f"<ThumbMediaId>{cdata(reply.thumb_media_id)}</ThumbMediaId></Music>"
        )
    else:
        if not 1 <= len(reply.articles) <= MAX_NEWS_ARTICLES:
            raise ValueError(f"a news reply holds 1 to {MAX_NEWS_ARTICLES} articles")
        items = "".join(
            f"<item><Title>{cdata(a.title)}</Title><Description>{cdata(a.description)}</Description>"
            f"<PicUrl>{cdata(a.pic_url)}</PicUrl><Url>{cdata(a.url)}</Url></item>"
            for a in reply.articles
        )
        body = (
            f"<MsgType>{cdata('news')}</MsgType><ArticleCount>{len(reply.articles)}</ArticleCount>"
            f"<Articles>{items}</Articles>"
        )
    return f"<xml>{head}{body}</xml>"


def render_encrypted_envelope(*, encrypt: str, msg_signature: str, timestamp: str, nonce: str) -> str:
    return (
        f"<xml><Encrypt>{cdata(encrypt)}</Encrypt><MsgSignature>{cdata(msg_signature)}</MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{cdata(nonce)}</Nonce></xml>"
    )
