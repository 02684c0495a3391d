from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.utils import check_signature as wechatpy_check_signature

from scrm.channels.base import InboundRejected
from scrm.channels.wechat.crypto import (
    MessageCrypto,
    decode_encoding_aes_key,
    sha1_signature,
    signature_matches,
)

from .helpers import AES_KEY, APPID, OLD_AES_KEY, TOKEN, frame, pad32, raw_aes_encrypt, sha1_sorted

aes_keys = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=43, max_size=43
)
printable = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)


def crypto(keys: tuple[str, ...] = (AES_KEY,), receive_id: str = APPID) -> MessageCrypto:
    return MessageCrypto(TOKEN, list(keys), receive_id)


def test_signature_is_sha1_of_sorted_parts() -> None:
    assert sha1_signature("b", "a", "c") == sha1_sorted("a", "b", "c")
    # Order of arguments does not matter, only the sorted concatenation.
    assert sha1_signature(TOKEN, "1409304348", "xxxxxx") == sha1_signature("xxxxxx", TOKEN, "1409304348")


@settings(max_examples=200)
@given(token=printable, timestamp=st.integers(0, 10**13).map(str), nonce=printable)
def test_signature_matches_wechatpy(token: str, timestamp: str, nonce: str) -> None:
    ours = sha1_signature(token, timestamp, nonce)
    wechatpy_check_signature(token, ours, timestamp, nonce)  # raises if different
    assert signature_matches(ours, token, timestamp, nonce)
    assert signature_matches(ours.upper(), token, timestamp, nonce)


@pytest.mark.parametrize(
    "bad",
    ["", None, "0" * 39, "0" * 41, "g" * 40, " " + "0" * 39, "0" * 40],
)
def test_malformed_or_wrong_signature_never_matches(bad: str | None) -> None:
    assert not signature_matches(bad, TOKEN, "1", "2")


def test_encoding_aes_key_validation() -> None:
    assert len(decode_encoding_aes_key(AES_KEY)) == 32
    for bad in ["short", AES_KEY + "A", AES_KEY[:-1] + "=", AES_KEY[:-1] + "+"]:
        with pytest.raises(ValueError):
            decode_encoding_aes_key(bad)


@settings(max_examples=150, deadline=None)
@given(key=aes_keys, appid=printable, msg=st.text(max_size=2000))
def test_our_encrypt_wechatpy_decrypts(key: str, appid: str, msg: str) -> None:
    ours = MessageCrypto(TOKEN, [key], appid).encrypt(msg.encode("utf-8"))
    assert len(base64.b64decode(ours)) % 32 == 0  # padded to 32, not 16
    assert PrpCrypto(base64.b64decode(key + "=")).decrypt(ours, appid) == msg


@settings(max_examples=150, deadline=None)
@given(key=aes_keys, appid=printable, msg=st.text(max_size=2000))
def test_wechatpy_encrypt_we_decrypt(key: str, appid: str, msg: str) -> None:
    theirs = PrpCrypto(base64.b64decode(key + "=")).encrypt(msg, appid)
    decrypted = MessageCrypto(TOKEN, [key], appid).decrypt(
        theirs if isinstance(theirs, str) else theirs.decode()
    )
    assert decrypted.plaintext == msg.encode("utf-8")
    assert decrypted.key_index == 0


def test_envelope_signature_matches_wechatpy() -> None:
    envelope = crypto().seal(b"<xml><a>1</a></xml>", timestamp="1409304348", nonce="xxxxxx")
    assert envelope.msg_signature == sha1_sorted(TOKEN, "1409304348", "xxxxxx", envelope.encrypt)
    xml = (
        f"<xml><Encrypt><![CDATA[{envelope.encrypt}]]></Encrypt>"
        f"<MsgSignature>{envelope.msg_signature}</MsgSignature></xml>"
    )
    plain = WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
        xml, envelope.msg_signature, "1409304348", "xxxxxx"
    )
    assert plain == "<xml><a>1</a></xml>"


def test_previous_key_fallback() -> None:
    old_only = MessageCrypto(TOKEN, [OLD_AES_KEY], APPID).encrypt(b"rotated")
    result = crypto((AES_KEY, OLD_AES_KEY)).decrypt(old_only)
    assert result.plaintext == b"rotated"
    assert result.key_index == 1
    with pytest.raises(InboundRejected) as info:
        crypto((AES_KEY,)).decrypt(old_only)
    assert info.value.status_code == 400


def test_wrong_appid_is_rejected_with_403() -> None:
    other = MessageCrypto(TOKEN, [AES_KEY], "wx_other_app").encrypt(b"hello")
    with pytest.raises(InboundRejected) as info:
        crypto().decrypt(other)
    assert info.value.status_code == 403


def test_appid_prefix_is_not_enough() -> None:
    # receive id "wx5823bf96d3bd56c7X" must not pass as "wx5823bf96d3bd56c7"
    longer = raw_aes_encrypt(AES_KEY, pad32(frame(b"hi", APPID.encode() + b"X")))
    with pytest.raises(InboundRejected) as info:
        crypto().decrypt(longer)
    assert info.value.status_code == 403


@pytest.mark.parametrize(
    ("encrypt", "reason"),
    [
        ("", "empty"),
        ("not base64 at all!", "bad base64"),
        ("QUJD", "3 bytes, not a block"),
        (base64.b64encode(b"x" * 33).decode(), "length not a multiple of 16"),
        ("密文", "non-ASCII"),
        ("A" * (600 * 1024), "oversized"),
    ],
)
def test_malformed_ciphertext_is_a_clean_400(encrypt: str, reason: str) -> None:
    with pytest.raises(InboundRejected) as info:
        crypto().decrypt(encrypt)
    assert info.value.status_code == 400, reason


def _forged(plaintext_padded: bytes) -> str:
    return raw_aes_encrypt(AES_KEY, plaintext_padded)


@pytest.mark.parametrize(
    ("padded", "reason"),
    [
        (frame(b"hello", APPID.encode()).ljust(63, b"\x00") + b"\x00", "pad byte 0"),
        (frame(b"hello", APPID.encode()).ljust(63, b"\x00") + b"\x21", "pad byte 33 > 32"),
        (frame(b"hello", APPID.encode()).ljust(60, b"\x00") + b"\x01\x02\x03\x04", "inconsistent pad bytes"),
        (frame(b"hello", APPID.encode()).ljust(64, b"\x40"), "pad byte 64 larger than block"),
    ],
)
def test_bad_pkcs7_padding_is_rejected(padded: bytes, reason: str) -> None:
    assert len(padded) % 32 == 0
    with pytest.raises(InboundRejected) as info:
        crypto().decrypt(_forged(padded))
    assert info.value.status_code == 400, reason
    assert "padding" in info.value.detail


def test_msg_len_past_the_buffer_is_rejected() -> None:
    padded = pad32(frame(b"hello", APPID.encode(), msg_len=10_000))
    with pytest.raises(InboundRejected) as info:
        crypto().decrypt(_forged(padded))
    assert info.value.status_code == 400
    assert "msg_len" in info.value.detail


def test_frame_shorter_than_header_is_rejected() -> None:
    with pytest.raises(InboundRejected) as info:
        crypto().decrypt(_forged(pad32(b"0123456789")))
    assert info.value.status_code == 400


def test_verify_signature_over_encrypt() -> None:
    c = crypto()
    encrypt = c.encrypt(b"x")
    c.verify_signature(c.sign("1", "n", encrypt), "1", "n", encrypt)
    for bad in [c.sign("1", "n", encrypt + "A"), "", None, c.sign("2", "n", encrypt)]:
        with pytest.raises(InboundRejected) as info:
            c.verify_signature(bad, "1", "n", encrypt)
        assert info.value.status_code == 401


def test_repr_hides_keys() -> None:
    assert AES_KEY not in repr(crypto())
    assert TOKEN not in repr(crypto())


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_corruption_only_ever_raises_inbound_rejected(data: st.DataObject) -> None:
    c = crypto((AES_KEY, OLD_AES_KEY))
    good = base64.b64decode(c.encrypt(data.draw(st.binary(max_size=200))))
    corrupted = bytearray(good)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(corrupted) - 1))
        corrupted[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        corrupted = corrupted[: data.draw(st.integers(0, len(corrupted)))]
    try:
        c.decrypt(base64.b64encode(bytes(corrupted)).decode())
    except InboundRejected as exc:
        assert 400 <= exc.status_code < 500
