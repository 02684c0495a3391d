from __future__ import annotations

import numpy as np
from scipy import sparse

from scrm.nlp.linear import fit_idf, train_linear


def _toy() -> tuple[sparse.csr_matrix, np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(0)
    n, d = 200, 64
    rows, cols = [], []
    labels = []
    for i in range(n):
        pos = i % 2 == 0
        feats = rng.choice(np.arange(0, 32) if pos else np.arange(32, 64), size=4, replace=False)
        feats = np.append(feats, rng.integers(0, d, size=2))  # shared noise
        rows += [i] * len(feats)
        cols += feats.tolist()
        labels.append("pos" if pos else "neg")
    counts = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, d))
    counts.sum_duplicates()
    dense = np.zeros((n, 2), dtype=np.float32)
    return counts, dense, labels, [f"text {i}" for i in range(n)]


def test_nb_scaling_is_folded_into_idf() -> None:
    counts, dense, labels, keys = _toy()
    w = np.ones(len(labels))
    plain = train_linear(counts, dense, labels, w, keys=keys, classes=["neg", "pos"])
    nb = train_linear(counts, dense, labels, w, keys=keys, classes=["neg", "pos"], nb=True)
    assert np.allclose(plain.idf, fit_idf(counts))
    assert not np.allclose(nb.idf, plain.idf)
    assert (nb.idf >= 0).all()
    for model in (plain, nb):
        pred = np.array(model.classes)[model.proba(counts, dense).argmax(axis=1)]
        assert (pred == np.array(labels)).mean() > 0.95


def test_fused_scoring_equals_per_model_proba() -> None:
    from scrm.nlp.linear import FusedModels
    from scrm.nlp.text import NgramCounts

    counts, dense, labels, keys = _toy()
    w = np.ones(len(labels))
    models = {
        "a": train_linear(counts, dense, labels, w, keys=keys, classes=["neg", "pos"], nb=True),
        "b": train_linear(counts, dense, [f"c{i % 3}" for i in range(len(labels))], w, keys=keys),
    }
    coo = counts.tocoo()
    order = np.lexsort((coo.col, coo.row))
    fused = FusedModels(models).proba(
        coo.row[order].astype(np.int64), coo.col[order].astype(np.int64), coo.data[order], dense
    )
    for name, model in models.items():
        assert np.allclose(fused[name], model.proba(counts, dense), atol=1e-5)
    empty = NgramCounts(3, counts.shape[1], *(np.zeros(0, dtype=np.int64),) * 2, np.zeros(0, np.float32))
    out = FusedModels(models).proba(empty.rows, empty.cols, empty.counts, np.zeros((3, 2), np.float32))
    assert np.allclose(out["a"].sum(axis=1), 1.0)


def test_fused_scoring_shares_the_base_matrix() -> None:
    from scrm.nlp.linear import FusedModels

    counts, dense, labels, keys = _toy()
    w = np.ones(len(labels))
    a = train_linear(counts, dense, labels, w, keys=keys, classes=["neg", "pos"])
    b = train_linear(counts, dense, [f"c{i % 3}" for i in range(len(labels))], w, keys=keys)
    b2 = train_linear(counts, dense, [f"d{i % 4}" for i in range(len(labels))], w, keys=keys)
    base = FusedModels({"a": a, "b": b})
    ws = FusedModels({"a": a, "b": b2}, share=base)
    assert ws.share is base and ws.names == ["b"]  # only the retrained model gets its own matrix
    coo = counts.tocoo()
    order = np.lexsort((coo.col, coo.row))
    args = (coo.row[order].astype(np.int64), coo.col[order].astype(np.int64), coo.data[order], dense)
    out = ws.proba(*args)
    assert np.allclose(out["a"], a.proba(counts, dense), atol=1e-5)
    assert np.allclose(out["b"], b2.proba(counts, dense), atol=1e-5)
