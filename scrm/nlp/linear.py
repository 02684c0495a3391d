"""Calibrated linear text classifiers over the shared features, stored as plain numpy arrays.

Training uses scikit-learn's LinearSVC; probabilities come from temperature scaling of the SVM
scores (softmax), the temperature fitted by log-loss on a held-out slice of the training data.
A saved model is a ``.npz`` file (no pickle), so loading is fast and safe.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # scipy and scikit-learn are imported lazily: prediction does not need them
    from scipy import sparse

log = logging.getLogger(__name__)

# liblinear stopping tolerance (scikit-learn default 1e-4): 1e-3 is ~15% faster, same dev scores.
TOL = 1e-3


def tfidf_rows(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    """Sublinear tf × idf, rows L2-normalised (a new matrix; *counts* is not modified)."""
    from scipy import sparse

    data = np.log1p(counts.data) * idf[counts.indices]
    mat = sparse.csr_matrix((data.astype(np.float32), counts.indices, counts.indptr), shape=counts.shape)
    sq = np.asarray(mat.multiply(mat).sum(axis=1)).ravel()
    norms = np.sqrt(sq, dtype=np.float32)
    norms[norms == 0] = 1.0
    mat.data /= np.repeat(norms, np.diff(mat.indptr))
    return mat


def fit_idf(counts: sparse.csr_matrix) -> np.ndarray:
    df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)
    n = counts.shape[0]
    return (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


@dataclass
class LinearTextModel:
    """A calibrated linear classifier: p(y|x) = softmax(a * (W x + b) + c)."""

    classes: list[str]
    idf: np.ndarray  # (n_hash,)
    coef: np.ndarray  # (k, n_hash + n_dense); k == 1 for two classes
    intercept: np.ndarray  # (k,)
    dense_scale: float
    calib_a: float
    calib_c: np.ndarray  # (n_classes,)

    def __post_init__(self) -> None:
        self._w: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_hash(self) -> int:
        return int(self.idf.shape[0])

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Contiguous (n_hash, k) and (n_dense, k) copies of the weights, made once on first use:
        multiplying a sparse matrix by the strided view `coef[:, :n].T` made scipy copy the whole
        weight matrix on every call. (The analyzer's fast path does not use these copies.)"""
        if self._w is None:
            n = self.n_hash
            self._w = (np.ascontiguousarray(self.coef[:, :n].T), np.ascontiguousarray(self.coef[:, n:].T))
        return self._w

    def scores(self, counts: sparse.csr_matrix, dense: np.ndarray) -> np.ndarray:
        """Raw decision values, shape (n, n_classes)."""
        x = tfidf_rows(counts, self.idf)
        w_hash, w_dense = self.weights()
        s = x @ w_hash + (dense * self.dense_scale) @ w_dense + self.intercept
        s = np.asarray(s, dtype=np.float64)
        if len(self.classes) == 2 and s.shape[1] == 1:
            s = np.hstack([-s / 2, s / 2])
        return s

    def proba(self, counts: sparse.csr_matrix, dense: np.ndarray) -> np.ndarray:
        return _softmax(self.calib_a * self.scores(counts, dense) + self.calib_c)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            classes=np.array(self.classes, dtype=str),
            idf=self.idf.astype(np.float32),
            coef=self.coef.astype(np.float32),
            intercept=self.intercept.astype(np.float32),
            dense_scale=np.array([self.dense_scale]),
            calib_a=np.array([self.calib_a]),
            calib_c=self.calib_c.astype(np.float64),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> LinearTextModel:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                classes=[str(c) for c in z["classes"]],
                idf=z["idf"],
                coef=z["coef"],
                intercept=z["intercept"],
                dense_scale=float(z["dense_scale"][0]),
                calib_a=float(z["calib_a"][0]),
                calib_c=z["calib_c"],
            )


def _stable_fraction(text: str) -> float:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest(), "big") / 2**32


def train_linear(
    counts: sparse.csr_matrix,
    dense: np.ndarray,
    labels: Sequence[str],
    weights: np.ndarray,
    *,
    keys: Sequence[str],
    c: float = 0.3,
    dense_scale: float = 0.3,
    balanced: bool = False,
    nb: bool = False,
    classes: Sequence[str] | None = None,
) -> LinearTextModel:
    """Train LinearSVC on tf-idf(char n-grams) ⊕ dense features, then calibrate on a 10% slice
    (chosen by a hash of each training text, so it is reproducible) and refit on everything.

    With *nb* (two classes only) the n-gram weights are NB-SVM style: each column's idf is
    multiplied by the absolute log-count ratio |log(p_j / q_j)| of the two classes (tf-idf mass,
    add-one smoothed), folded into the stored ``idf`` so prediction costs nothing extra."""
    from scipy import sparse
    from sklearn.svm import LinearSVC

    y = np.asarray(labels)
    cls_list = sorted(set(y.tolist())) if classes is None else list(classes)
    idf = fit_idf(counts)
    w = np.asarray(weights, dtype=np.float64)
    if nb and len(cls_list) == 2:
        xt = tfidf_rows(counts, idf)
        first = y == cls_list[0]
        p = np.asarray(xt[first].T @ w[first]).ravel() + 1.0
        q = np.asarray(xt[~first].T @ w[~first]).ravel() + 1.0
        ratio = np.abs(np.log((p / p.sum()) / (q / q.sum())))
        idf = (idf * ratio).astype(np.float32)
    x = sparse.hstack([tfidf_rows(counts, idf), sparse.csr_matrix(dense * dense_scale)], format="csr")
    if balanced:
        total = w.sum()
        for lab in cls_list:
            m = y == lab
            if m.any():
                w[m] *= (total / len(cls_list)) / w[m].sum()
    held = np.array([_stable_fraction(k) < 0.1 for k in keys])

    def fit(mask: np.ndarray) -> Any:
        clf = LinearSVC(C=c, loss="squared_hinge", dual="auto", tol=TOL, max_iter=3000, random_state=0)
        clf.fit(x[mask], y[mask], sample_weight=w[mask])
        return clf

    def model_from(clf: Any) -> LinearTextModel:
        order = [list(clf.classes_).index(k) for k in cls_list] if len(cls_list) > 2 else [0]
        coef = np.asarray(clf.coef_)[order]
        icpt = np.asarray(clf.intercept_)[order]
        if len(cls_list) == 2 and list(clf.classes_) != cls_list:
            coef, icpt = -coef, -icpt
        return LinearTextModel(
            classes=cls_list,
            idf=idf,
            coef=coef.astype(np.float32),
            intercept=icpt.astype(np.float32),
            dense_scale=dense_scale,
            calib_a=1.0,
            calib_c=np.zeros(len(cls_list)),
        )

    calib_a, calib_c = 1.0, np.zeros(len(cls_list))
    if held.sum() >= 20 and len(set(y[~held].tolist())) == len(cls_list) and len(set(y[held].tolist())) > 1:
        part = model_from(fit(~held))
        s = part.scores(counts[held], dense[held])
        yi = np.array([cls_list.index(v) for v in y[held]])
        # temperature scaling: one scale for all scores, chosen by held-out log-loss
        best = (np.inf, 1.0)
        for a in np.geomspace(0.25, 16, 25):
            p = _softmax(a * s)
            nll = -np.mean(np.log(p[np.arange(len(yi)), yi] + 1e-12))
            best = min(best, (nll, float(a)))
        calib_a = best[1]
    model = model_from(fit(np.ones(len(y), dtype=bool)))
    model.calib_a = calib_a
    model.calib_c = calib_c
    return model


class FusedModels:
    """Several models over the same hashed features, scored together (prediction only).

    For model *m*, ``x_m = tfidf(counts) / ||tfidf||`` with ``tfidf_j = log1p(count_j) · idf_m[j]``;
    so ``x_m · w_m = Σ_j log1p(count_j) · (idf_m[j] w_m[j]) / sqrt(Σ_j log1p(count_j)² idf_m[j]²)``.
    The idf is folded into one (n_hash, Σk + n_models) matrix holding every model's n-gram weights
    and squared idf, so a batch needs one gather and one segmented sum for all models, with
    numpy only. Results equal ``LinearTextModel.proba`` up to float rounding.

    With *share*, models that are the very same objects as in *share* are scored from *share*'s
    matrix (a workspace that retrained only its intent model adds a matrix for that model alone,
    not a copy of the default models)."""

    def __init__(self, models: dict[str, LinearTextModel], share: FusedModels | None = None) -> None:
        sizes = {m.n_hash for m in models.values()}
        if len(sizes) != 1:
            raise ValueError("models disagree on the number of hashed features")
        n_hash = sizes.pop()
        self.models = models
        shared = [n for n, m in models.items() if share is not None and share.models.get(n) is m]
        self.share = share if shared else None
        self.shared = frozenset(shared)
        own = {n: m for n, m in models.items() if n not in self.shared}
        self.names = list(own)
        ks = [int(m.coef.shape[0]) for m in own.values()]
        self.k_total = sum(ks)
        width = self.k_total + len(ks)
        w = np.empty((n_hash, width), dtype=np.float32)
        n_dense = int(next(iter(models.values())).coef.shape[1]) - n_hash
        w_dense = np.zeros((n_dense, self.k_total), dtype=np.float32)
        bias = np.zeros(self.k_total, dtype=np.float32)
        self.slices: dict[str, slice] = {}
        off = 0
        for j, (name, m) in enumerate(own.items()):
            k = ks[j]
            w[:, off : off + k] = m.coef[:, :n_hash].T * m.idf[:, None]
            w[:, self.k_total + j] = np.square(m.idf)
            w_dense[:, off : off + k] = m.coef[:, n_hash:].T * np.float32(m.dense_scale)
            bias[off : off + k] = m.intercept
            self.slices[name] = slice(off, off + k)
            off += k
        self.w = w
        self.w_dense = w_dense
        self.bias = bias

    def scores(
        self, rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, dense: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Raw decision values (n, k) of every model; *rows* must be non-decreasing, (row, col)
        sorted coordinates with summed counts (``text.NgramCounts``)."""
        out = self.share.scores(rows, cols, counts, dense) if self.share is not None else {}
        out = {name: s for name, s in out.items() if name in self.shared}
        if not self.names:
            return out
        n_docs = dense.shape[0]
        kt = self.k_total
        sums = np.zeros((n_docs, self.w.shape[1]), dtype=np.float32)
        if rows.shape[0]:
            tf = np.log1p(counts.astype(np.float32))
            g = self.w[cols]
            g[:, :kt] *= tf[:, None]
            g[:, kt:] *= np.square(tf)[:, None]
            starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
            sums[rows[starts]] = np.add.reduceat(g, starts, axis=0)
        norms = np.sqrt(sums[:, kt:])
        norms[norms == 0] = 1.0
        lin = dense.astype(np.float32) @ self.w_dense + self.bias
        for j, name in enumerate(self.names):
            sl = self.slices[name]
            out[name] = sums[:, sl] / norms[:, j : j + 1] + lin[:, sl]
        return out

    def proba(
        self, rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, dense: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Calibrated probabilities of every model (see ``scores``)."""
        out: dict[str, np.ndarray] = {}
        for name, raw in self.scores(rows, cols, counts, dense).items():
            m = self.models[name]
            s = raw.astype(np.float64)
            if len(m.classes) == 2 and s.shape[1] == 1:
                s = np.hstack([-s / 2, s / 2])
            out[name] = _softmax(m.calib_a * s + m.calib_c)
        return out
