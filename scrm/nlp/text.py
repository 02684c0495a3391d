"""Text normalisation and the fast, vectorised feature extractor shared by all NLP tasks.

All tasks read the same hashed character n-gram matrix (computed once per batch with numpy,
no per-character Python loop) plus a small dense block of lexicon/emoticon/punctuation
features. Each task then applies its own idf weights and linear model.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # scipy is only needed for training (imported lazily); prediction is numpy-only
    from scipy import sparse

EMOTICON_RE = re.compile(r"\[[^\[\]]{1,10}\]")
_EMOTICON_BATCH_RE = re.compile(r"\[([^\[\]\x00]{1,10})\]")
_HTTP_RE = re.compile("http")
URL_RE = re.compile(r"https?://[\w\-./?=&%#:~+]+", re.ASCII)
MENTION_RE = re.compile(r"@[\w\-]{1,20}(?=[\s:：,，.。!！?？)）/]|$)")
_WS_RE = re.compile(r"\s+")
_DIGIT_RE = re.compile(r"[0-9]")
_LATIN_RE = re.compile(r"[a-z]")
_DIGIT_TABLE = str.maketrans("0123456789", "0000000000")

URL_CHAR = "\ue000"
MENTION_CHAR = "\ue001"
SEP = "\x00"

# Weibo emoticon codes whose meaning is clear; used as dense features (the n-grams see them too).
POS_EMOTICONS = frozenset(
    [
        "哈哈",
        "嘻嘻",
        "鼓掌",
        "爱你",
        "心",
        "good",
        "赞",
        "耶",
        "太开心",
        "偷笑",
        "可爱",
        "亲亲",
        "威武",
        "给力",
        "笑哈哈",
        "馋嘴",
        "花心",
        "好爱哦",
        "酷",
        "礼物",
        "兔子",
        "蛋糕",
        "愛你",
        "ok",
        "给劲",
        "鲜花",
        "太阳",
        "微风",
        "爱心",
        "奥特曼",
        "互粉",
        "xkl转圈",
        "din推撞",
        "得意地笑",
        "好喜欢",
        "笑cry",
        "憧憬",
        "打call",
        "握手",
        "作揖",
        "干杯",
        "哇",
        "米",
        "doge",
        "喵喵",
        "二哈",
        "赞啊",
        "抱抱",
        "害羞",
        "挤眼",
        "思考",
        "中国赞",
        "加油",
        "求关注",
    ]
)
NEG_EMOTICONS = frozenset(
    [
        "泪",
        "抓狂",
        "衰",
        "怒",
        "哼",
        "鄙视",
        "可怜",
        "伤心",
        "委屈",
        "悲伤",
        "失望",
        "生病",
        "怒骂",
        "晕",
        "吐",
        "汗",
        "弱",
        "不要",
        "闭嘴",
        "打脸",
        "拜拜",
        "左哼哼",
        "右哼哼",
        "困",
        "惊恐",
        "感冒",
        "淚",
        "崩溃",
        "心碎",
        "呵呵",
        "怒了",
        "抓狂了",
        "泪流满面",
        "黑线",
        "哭",
        "大哭",
        "囧",
        "蜡烛",
        "疑问",
        "白眼",
        "允悲",
        "费解",
        "傻眼",
        "吃惊",
        "裂开",
        "跪了",
        "摊手",
        "伤心欲绝",
    ]
)


def strip_emoticons(text: str) -> str:
    """Remove Weibo emoticon codes such as ``[怒]`` (the 'removed' evaluation setting)."""
    return EMOTICON_RE.sub("", text)


def normalize(text: str) -> str:
    """Canonical form used for features: NFKC (full-width → half-width), lower case, URLs and
    @mentions collapsed to one placeholder character each, digits mapped to ``0``, no whitespace."""
    return _normalize_lower(unicodedata.normalize("NFKC", text).lower())


def _normalize_lower(t: str) -> str:
    """normalize() for text that is already NFKC and lower-cased."""
    t = t.replace(SEP, " ")
    t = URL_RE.sub(URL_CHAR, t)
    t = MENTION_RE.sub(MENTION_CHAR, t)
    t = t.translate(_DIGIT_TABLE)
    return _WS_RE.sub("", t)


def dedup_key(text: str) -> str:
    """Key used to detect the same text across data sets (whitespace removed)."""
    return _WS_RE.sub("", text)


# --------------------------------------------------------------------------------------------
# Hashed character n-grams, computed for a whole batch at once.

_P1 = np.uint64(0x9E3779B97F4A7C15)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_SALT = (
    np.uint64(0),
    np.uint64(0x165667B19E3779F9),
    np.uint64(0x27D4EB2F165667C5),
    np.uint64(0x85EBCA77C2B2AE63),
)


@dataclass
class NgramCounts:
    """Hashed character n-gram counts of a batch in coordinate form, sorted by (row, col) with
    duplicates summed: the numpy-only equivalent of a CSR count matrix."""

    n_docs: int
    n_features: int
    rows: np.ndarray  # int64, non-decreasing
    cols: np.ndarray  # int64
    counts: np.ndarray  # float32

    def to_csr(self) -> sparse.csr_matrix:
        from scipy import sparse

        indptr = np.zeros(self.n_docs + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.rows, minlength=self.n_docs), out=indptr[1:])
        return sparse.csr_matrix((self.counts, self.cols, indptr), shape=(self.n_docs, self.n_features))


def char_ngram_coo(norm_texts: Sequence[str], n_features: int, max_n: int = 3) -> NgramCounts:
    """Counts of hashed character 1..max_n-grams of every text (vectorised over the batch: one
    rolling hash over the joined code points, then one sort of the (row, col) keys)."""
    n_docs = len(norm_texts)
    empty = np.zeros(0, dtype=np.int64)
    if n_docs == 0:
        return NgramCounts(0, n_features, empty, empty, np.zeros(0, dtype=np.float32))
    joined = SEP + SEP.join(norm_texts) + SEP
    cp = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    is_sep = cp == 0
    doc = (np.cumsum(is_sep) - 1) * n_features  # row offset of every position
    length = cp.shape[0]
    parts: list[np.ndarray] = []
    mask_bits = np.uint64(n_features - 1)
    with np.errstate(over="ignore"):
        h = np.zeros(length, dtype=np.uint64)
        bad = np.zeros(length, dtype=bool)
        for n in range(1, max_n + 1):
            m = length - n + 1
            if m <= 0:
                break
            h = h[:m] * _P1 + cp[n - 1 : n - 1 + m]
            bad = bad[:m] | is_sep[n - 1 : n - 1 + m]
            ok = ~bad
            hv = (h[ok] + _SALT[n - 1]) * _P2
            hv ^= hv >> np.uint64(29)
            parts.append((hv & mask_bits).astype(np.int64) + doc[:m][ok])
    keys = np.concatenate(parts)
    if keys.shape[0] == 0:
        return NgramCounts(n_docs, n_features, empty, empty, np.zeros(0, dtype=np.float32))
    keys.sort()
    first = np.empty(keys.shape[0], dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    idx = np.flatnonzero(first)
    uniq = keys[idx]
    counts = np.diff(np.append(idx, keys.shape[0])).astype(np.float32)
    return NgramCounts(n_docs, n_features, uniq // n_features, uniq & (n_features - 1), counts)


def char_ngram_counts(norm_texts: Sequence[str], n_features: int, max_n: int = 3) -> sparse.csr_matrix:
    """Count matrix (len(texts) × n_features) of hashed character 1..max_n-grams."""
    return char_ngram_coo(norm_texts, n_features, max_n).to_csr()


# --------------------------------------------------------------------------------------------
# Lexicon features (dense block), matched with vectorised rolling hashes.

DENSE_NAMES = (
    "lex_pos",
    "lex_neg",
    "lex_pos_negated",
    "lex_neg_negated",
    "dlut_le",  # 乐 happy
    "dlut_hao",  # 好 good / like
    "dlut_nu",  # 怒 anger
    "dlut_ai",  # 哀 sad
    "dlut_ju",  # 惧 fear
    "dlut_wu",  # 恶 disgust
    "dlut_jing",  # 惊 surprise
    "degree",
    "turn",
    "emo_pos",
    "emo_neg",
    "emo_other",
    "exclaim",
    "question",
    "url",
    "mention",
    "length",
    "digits",
    "latin",
    "bias",
)
_DLUT_GROUP = {
    "PA": 4,
    "PE": 4,
    "PD": 5,
    "PH": 5,
    "PG": 5,
    "PB": 5,
    "PK": 5,
    "NA": 6,
    "NB": 7,
    "NJ": 7,
    "NH": 7,
    "PF": 7,
    "NI": 8,
    "NC": 8,
    "NG": 8,
    "NE": 9,
    "ND": 9,
    "NN": 9,
    "NK": 9,
    "NL": 9,
    "PC": 10,
}
_KIND_NEGATOR = 100
_KIND_DEGREE = 101
_KIND_TURN = 102


def _read_words(path: Path) -> list[str]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [w.strip() for w in f if w.strip() and "." not in w]


_LEX_BITS = 22  # size of the candidate bitmap (2^22 bits, one byte each: 4 MB)
LEXICON_FORMAT = "1"  # bump when the compiled form (or the way it is built) changes


def _word_hashes(words: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling hashes (the same recurrence as ``Lexicon.match``) and code points of words of
    length *n*."""
    cps = np.frombuffer("".join(words).encode("utf-32-le"), dtype=np.uint32).reshape(len(words), n)
    h = np.zeros(len(words), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(n):
            h = h * _P1 + cps[:, i].astype(np.uint64)
    return h, cps


def _bucket(h: np.ndarray, n: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return ((h + _SALT[n % 4] + np.uint64(n)) * _P2) >> np.uint64(64 - _LEX_BITS)


@dataclass
class Lexicon:
    """Sentiment/emotion lexicon built from ``data_dir/lexicons``; missing files are skipped.

    Matching is vectorised over a batch (no per-character Python, no automaton): for every word
    length *n* present in the lexicon, a rolling hash of every *n*-gram of the joined texts is
    looked up in a bitmap, candidates are found in the sorted word hashes of that length and then
    checked code point by code point, so the result is exactly the set of (end, word) occurrences
    an Aho-Corasick automaton reports."""

    size: int
    # word length → (sorted hashes, kind-set id per word, code points (n_words, length))
    by_len: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    # per kind-set id: weights added to the dense columns (DLUT groups, degree, turn), polarity
    # flags (pos, neg) and whether the word is a negator
    kind_cols: np.ndarray = field(default_factory=lambda: np.zeros((1, len(DENSE_NAMES)), np.float32))
    kind_polar: np.ndarray = field(default_factory=lambda: np.zeros((1, 2), bool))
    kind_negator: np.ndarray = field(default_factory=lambda: np.zeros(1, bool))

    def __post_init__(self) -> None:
        # _bitmap: buckets of whole words; _prefix: buckets of proper prefixes (a position whose
        # k-character prefix is in neither can stop there)
        self._bitmap = np.zeros(2**_LEX_BITS, dtype=bool)
        self._prefix = np.zeros(2**_LEX_BITS, dtype=bool)
        for n, (hashes, _kids, cps) in self.by_len.items():
            self._bitmap[_bucket(hashes, n)] = True
            h = np.zeros(cps.shape[0], dtype=np.uint64)
            with np.errstate(over="ignore"):
                for k in range(1, n):
                    h = h * _P1 + cps[:, k - 1].astype(np.uint64)
                    self._prefix[_bucket(h, k)] = True
        self._max_len = max(self.by_len, default=0)

    @staticmethod
    def _entries(data_dir: Path) -> dict[str, set[int]]:
        lex = data_dir / "lexicons"
        entries: dict[str, set[int]] = {}

        def add(word: str, kind: int) -> None:
            word = unicodedata.normalize("NFKC", word).lower()
            if len(word) >= 1:
                entries.setdefault(word, set()).add(kind)

        for name in (
            "hownet/positive_emotion.txt",
            "hownet/positive_evaluation.txt",
            "ntusd/positive.txt",
            "tsinghua_lijun/positive.txt",
        ):
            for w in _read_words(lex / name):
                if len(w) >= 2:
                    add(w, 0)
        for name in (
            "hownet/negative_emotion.txt",
            "hownet/negative_evaluation.txt",
            "ntusd/negative.txt",
            "tsinghua_lijun/negative.txt",
        ):
            for w in _read_words(lex / name):
                if len(w) >= 2:
                    add(w, 1)
        dlut = lex / "dlut_emotion_ontology.csv"
        if dlut.exists():
            with dlut.open(encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    group = _DLUT_GROUP.get((row.get("emotion_class") or "").strip())
                    word = (row.get("word") or "").strip()
                    if group is not None and len(word) >= 2:
                        add(word, group)
        for w in _read_words(lex / "negators.txt"):
            add(w, _KIND_NEGATOR)
        for w in _read_words(lex / "turn_words.txt"):
            add(w, _KIND_TURN)
        deg = lex / "degree_words.csv"
        if deg.exists():
            with deg.open(encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    w = (row.get("word") or "").strip()
                    if w:
                        add(w, _KIND_DEGREE)
        return entries

    @classmethod
    def build(cls, data_dir: Path) -> Lexicon:
        entries = cls._entries(data_dir)
        kind_ids: dict[tuple[int, ...], int] = {}
        groups: dict[int, tuple[list[str], list[int]]] = {}
        for word, kinds in entries.items():
            kid = kind_ids.setdefault(tuple(sorted(kinds)), len(kind_ids))
            ws, ks = groups.setdefault(len(word), ([], []))
            ws.append(word)
            ks.append(kid)
        by_len: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for n, (ws, ks) in sorted(groups.items()):
            h, cps = _word_hashes(ws, n)
            order = np.argsort(h, kind="stable")
            by_len[n] = (h[order], np.asarray(ks, dtype=np.int64)[order], cps[order])
        n_ids = max(len(kind_ids), 1)
        cols = np.zeros((n_ids, len(DENSE_NAMES)), np.float32)
        polar = np.zeros((n_ids, 2), bool)
        negator = np.zeros(n_ids, bool)
        for key, i in kind_ids.items():
            for k in key:
                if k == _KIND_NEGATOR:
                    negator[i] = True
                elif k == _KIND_DEGREE:
                    cols[i, 11] += 1
                elif k == _KIND_TURN:
                    cols[i, 12] += 1
                elif k <= 1:
                    polar[i, k] = True
                else:
                    cols[i, k] += 1
        return cls(size=len(entries), by_len=by_len, kind_cols=cols, kind_polar=polar, kind_negator=negator)

    @classmethod
    def load(cls, data_dir: Path, cache_dir: Path | None = None) -> Lexicon:
        """Build the lexicon from the word lists, or read its compiled form from *cache_dir*
        (``lexicon-<hash of LEXICON_FORMAT and the lexicon files>.npz``; written on first build)."""
        if cache_dir is None:
            return cls.build(data_dir)
        h = hashlib.sha256(LEXICON_FORMAT.encode())
        lex = data_dir / "lexicons"
        for p in sorted(lex.rglob("*")) if lex.exists() else []:
            if p.is_file():
                h.update(str(p.relative_to(lex)).encode() + b"\0" + p.read_bytes())
        path = cache_dir / f"lexicon-{h.hexdigest()[:16]}.npz"
        if path.exists():
            try:
                return cls._read(path)
            except (OSError, KeyError, ValueError):  # a damaged cache file: rebuild it
                pass
        lexicon = cls.build(data_dir)
        lexicon._write(path)
        return lexicon

    def _write(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "size": np.array([self.size]),
            "kind_cols": self.kind_cols,
            "kind_polar": self.kind_polar,
            "kind_negator": self.kind_negator,
        }
        for n, (hashes, kids, cps) in self.by_len.items():
            arrays[f"h{n}"], arrays[f"k{n}"], arrays[f"w{n}"] = hashes, kids, cps
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        tmp.replace(path)

    @classmethod
    def _read(cls, path: Path) -> Lexicon:
        with np.load(path, allow_pickle=False) as z:
            lens = sorted(int(k[1:]) for k in z.files if k.startswith("h"))
            return cls(
                size=int(z["size"][0]),
                by_len={n: (z[f"h{n}"], z[f"k{n}"], z[f"w{n}"]) for n in lens},
                kind_cols=z["kind_cols"],
                kind_polar=z["kind_polar"],
                kind_negator=z["kind_negator"],
            )

    def match(self, joined: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(end index, length, kind-set id) of every lexicon word occurring in *joined*
        (overlapping occurrences included), ordered by end index.

        A vectorised walk of all start positions at once: step *k* extends the rolling hash of
        every surviving position by one character, reports the positions whose k-gram is a word
        (bitmap, then binary search in the sorted hashes, then an exact code-point check) and
        keeps only those whose k-gram is a proper prefix of some word."""
        cp = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
        length = cp.shape[0]
        ends: list[np.ndarray] = []
        lns: list[np.ndarray] = []
        kids: list[np.ndarray] = []
        pos = np.arange(length, dtype=np.int64)
        h = cp.astype(np.uint64)
        with np.errstate(over="ignore"):
            for n in range(1, self._max_len + 1):
                if n > 1:
                    pos = pos[pos + (n - 1) < length]
                    h = h[: pos.shape[0]] * _P1 + cp[pos + (n - 1)]
                if not pos.size:
                    break
                bucket = _bucket(h, n)
                entry = self.by_len.get(n)
                if entry is not None:
                    hit = np.flatnonzero(self._bitmap[bucket])
                    if hit.size:
                        hashes, kind, words = entry
                        hc = h[hit]
                        idx = np.minimum(np.searchsorted(hashes, hc), hashes.shape[0] - 1)
                        ok = hashes[idx] == hc
                        start, idx = pos[hit[ok]], idx[ok]
                        if start.size:
                            ok = (cp[start[:, None] + np.arange(n)] == words[idx]).all(axis=1)
                            ends.append(start[ok] + (n - 1))
                            lns.append(np.full(int(ok.sum()), n, dtype=np.int64))
                            kids.append(kind[idx[ok]])
                keep = self._prefix[bucket]
                pos, h = pos[keep], h[keep]
        if not ends:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        e, ln, k = np.concatenate(ends), np.concatenate(lns), np.concatenate(kids)
        order = np.argsort(e, kind="stable")
        return e[order], ln[order], k[order]

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """Dense features for *texts* (already NFKC/lower-cased, emoticons still present).

        Vectorised over the batch: one lexicon match and one emoticon scan over the joined
        texts; per-document sums with numpy. A lexicon word counts as negated when a negator
        ends 0–3 characters before it starts (same document)."""
        n = len(texts)
        out = np.zeros((n, len(DENSE_NAMES)), dtype=np.float32)
        if n == 0:
            return out
        clean = [t.replace(SEP, " ") for t in texts]
        lengths = np.fromiter((len(t) for t in clean), dtype=np.int64, count=n)
        starts = np.zeros(n, dtype=np.int64)
        np.cumsum(lengths[:-1] + 1, out=starts[1:])
        joined = SEP.join(clean)
        if self.size > 0 and joined:
            ends, lns, kids = self.match(joined)
            if ends.size:
                doc = np.searchsorted(starts, ends, side="right") - 1
                np.add.at(out, doc, self.kind_cols[kids])
                is_neg = self.kind_negator[kids]
                polar = self.kind_polar[kids]
                has_polar = polar.any(axis=1)
                if has_polar.any():
                    p_idx = np.flatnonzero(has_polar)
                    negated = np.zeros(p_idx.shape[0], dtype=bool)
                    neg_ends = ends[is_neg]  # already in increasing order
                    if neg_ends.size:
                        j = np.searchsorted(neg_ends, ends[p_idx], side="left") - 1
                        ok = j >= 0
                        jj = np.where(ok, j, 0)
                        gap = (ends[p_idx] - lns[p_idx] + 1) - neg_ends[jj]
                        same_doc = doc[is_neg][jj] == doc[p_idx]
                        negated = ok & same_doc & (gap >= 0) & (gap <= 3)
                    for k in (0, 1):
                        sel = polar[p_idx, k]
                        pcol = np.where(negated[sel], k + 2, k)
                        np.add.at(out, (doc[p_idx][sel], pcol), 1.0)
        emo_pos, emo_neg, emo_doc = [], [], []
        for mt in _EMOTICON_BATCH_RE.finditer(joined):
            inner = mt.group(1)
            emo_doc.append(mt.start())
            emo_pos.append(inner in POS_EMOTICONS)
            emo_neg.append(inner in NEG_EMOTICONS)
        if emo_doc:
            d = np.searchsorted(starts, np.array(emo_doc), side="right") - 1
            ep, en = np.array(emo_pos), np.array(emo_neg)
            ecol = np.where(ep, 13, np.where(en, 14, 15))
            np.add.at(out, (d, ecol), 1.0)
        cp = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
        cdoc = np.repeat(np.arange(n), lengths + 1)[: cp.shape[0]]
        for col, mask in (
            (16, (cp == 33) | (cp == 0xFF01)),  # ! ！
            (17, (cp == 63) | (cp == 0xFF1F)),  # ? ？
            (19, cp == 64),  # @
            (21, (cp >= 48) & (cp <= 57)),
            (22, (cp >= 97) & (cp <= 122)),
        ):
            out[:, col] = np.bincount(cdoc[mask], minlength=n)
        http = [mt.start() for mt in _HTTP_RE.finditer(joined)]
        if http:
            out[:, 18] = np.bincount(np.searchsorted(starts, np.array(http), side="right") - 1, minlength=n)
        out[:, 20] = lengths
        # squash counts
        np.log1p(out, out=out)
        out[:, 20] = out[:, 20] / 5.0
        out[:, 23] = 1.0
        return out


class Featurizer:
    """Turns raw texts into the shared sparse matrix: hashed char n-grams (counts) + dense block."""

    def __init__(self, lexicon: Lexicon, n_features: int = 2**19, max_n: int = 3) -> None:
        if n_features & (n_features - 1):
            raise ValueError("n_features must be a power of two")
        self.lexicon = lexicon
        self.n_features = n_features
        self.max_n = max_n

    @property
    def n_dense(self) -> int:
        return len(DENSE_NAMES)

    def transform_coo(self, texts: Sequence[str]) -> tuple[NgramCounts, np.ndarray]:
        """(n-gram counts, dense block) without scipy: the prediction path."""
        lower = [unicodedata.normalize("NFKC", t).lower() for t in texts]
        norm = [_normalize_lower(t) for t in lower]
        return char_ngram_coo(norm, self.n_features, self.max_n), self.lexicon.features(lower)

    def transform(self, texts: Sequence[str]) -> tuple[sparse.csr_matrix, np.ndarray]:
        """(CSR count matrix, dense block): the training path."""
        coo, dense = self.transform_coo(texts)
        return coo.to_csr(), dense
