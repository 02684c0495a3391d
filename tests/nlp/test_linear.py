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
