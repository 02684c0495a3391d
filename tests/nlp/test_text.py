from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scrm.nlp.text import SEP, Lexicon, char_ngram_coo

WORDS_POS = ["开心", "好用", "非常满意", "棒棒哒", "good job"]
WORDS_NEG = ["失望", "太差了", "差", "不满意的服务态度"]
NEGATORS = ["不", "没", "没有"]


def _lexicon(tmp: Path) -> Lexicon:
    lex = tmp / "lexicons"
    (lex / "ntusd").mkdir(parents=True)
    (lex / "ntusd" / "positive.txt").write_text("\n".join(WORDS_POS), encoding="utf-8")
    (lex / "ntusd" / "negative.txt").write_text("\n".join(WORDS_NEG), encoding="utf-8")
    (lex / "negators.txt").write_text("\n".join(NEGATORS), encoding="utf-8")
    return Lexicon.load(tmp)


def _brute(lexicon_words: list[str], joined: str) -> list[tuple[int, int]]:
    out = []
    for w in set(lexicon_words):
        start = joined.find(w)
        while start >= 0:
            out.append((start + len(w) - 1, len(w)))
            start = joined.find(w, start + 1)
    return sorted(out)


def test_lexicon_match_equals_brute_force_search(tmp_path: Path) -> None:
    lexicon = _lexicon(tmp_path)
    words = [w for w in WORDS_POS + WORDS_NEG if len(w) >= 2] + NEGATORS
    texts = ["真的不开心，太差了太差了", "没有不满意的服务态度", "good job!!开心开心", "", "差不多"]
    joined = SEP.join(texts)
    ends, lns, _ = lexicon.match(joined)
    assert sorted(zip(ends.tolist(), lns.tolist(), strict=True)) == _brute(words, joined)
    assert (np.diff(ends) >= 0).all()
    feats = lexicon.features(texts)
    assert np.isclose(feats[0, 2], np.log1p(1))  # 开心 negated by 不 (counts are log1p-squashed)
    assert np.isclose(feats[1, 3], np.log1p(1))  # 不满意的服务态度 negated by 没有


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(alphabet="开心好用差失望不没有太了服务态度满意非常 ", max_size=20), max_size=5))
def test_lexicon_match_random_texts(texts: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        lexicon = _lexicon(Path(d))
    words = [w for w in WORDS_POS + WORDS_NEG if len(w) >= 2] + NEGATORS
    joined = SEP.join(texts)
    ends, lns, _ = lexicon.match(joined)
    assert sorted(zip(ends.tolist(), lns.tolist(), strict=True)) == _brute(words, joined)


def test_lexicon_cache_round_trip(tmp_path: Path) -> None:
    _lexicon(tmp_path)
    a = Lexicon.load(tmp_path, tmp_path / "cache")
    assert list((tmp_path / "cache").glob("lexicon-*.npz"))
    b = Lexicon.load(tmp_path, tmp_path / "cache")  # read back
    texts = ["不开心", "非常满意，好用", "太差了"]
    assert np.array_equal(a.features(texts), b.features(texts))


def test_ngram_counts_sorted_and_summed() -> None:
    coo = char_ngram_coo(["aaa", "", "ab"], 2**10, 3)
    assert coo.n_docs == 3
    assert (np.diff(coo.rows) >= 0).all()
    keys = coo.rows * 2**10 + coo.cols
    assert len(np.unique(keys)) == len(keys)
    # "aaa": a×3, aa×2, aaa×1; "ab": a, b, ab
    assert sorted(coo.counts[coo.rows == 0].tolist()) == [1.0, 2.0, 3.0]
    assert coo.counts[coo.rows == 2].sum() == 3
    csr = coo.to_csr()
    assert csr.shape == (3, 2**10) and csr[1].nnz == 0
