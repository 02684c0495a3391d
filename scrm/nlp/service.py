"""Public API of the Chinese message-understanding package.

``get_analyzer(workspace)`` returns a cached :class:`Analyzer` (default models, or the active
model of a workspace); ``Analyzer.analyze_many`` runs sentiment, emotion, intent, entities,
spam and urgency for a batch. ``train_workspace`` learns from agents' corrections and custom
intents and activates the new version only if it is not worse on the held-out corrections.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scrm.config import get_settings

from . import training
from .datasets import EMOTIONS, SENTIMENTS, Labeled
from .entities import Entity, extract_entities, mask_phone
from .intent_data import INTENTS
from .linear import FusedModels, LinearTextModel
from .text import Featurizer

log = logging.getLogger(__name__)

TASKS = ("sentiment", "emotion", "intent")
URGENCY_LEVELS = ("low", "normal", "high", "urgent")
# (weight of the emotion model in p(neutral), weight of the emotion model in the pos/neg split)
SENTIMENT_MIX = (0.7, 0.5)
_URGENT_WORDS = re.compile(
    r"急|马上|赶紧|尽快|立刻|救命|在线等|12315|曝光|媒体|记者|律师|起诉|法院|消协|民航局|工信部|维权|报警|"
    r"今天必须|最后一次|再不|urgent|asap",
    re.IGNORECASE,
)
_SPAM_CONTACT = re.compile(
    r"(加|➕|\+)\s*(v|V|微|薇|威|q|Q|扣)|vx|wx|v信|微信号|qq群|私聊|看我主页|点我头像", re.IGNORECASE
)
_URL = re.compile(r"https?://|t\.cn/|www\.|dwz\.cn", re.IGNORECASE)

__all__ = [
    "Analyzer",
    "Correction",
    "Entity",
    "RegistryEntry",
    "Triage",
    "WorkspaceExamples",
    "get_analyzer",
    "mask_phone",
    "set_workspace_examples_provider",
    "train_workspace",
]


@dataclass
class Triage:
    sentiment: str
    sentiment_score: float
    emotion: str
    emotion_score: float
    intent: str
    intent_score: float
    entities: list[Entity]
    is_spam: bool
    spam_score: float
    urgency: str
    model_version: str

    def to_dict(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict deep-copies every value and cost ~0.1 ms a message.
        return {
            "sentiment": self.sentiment,
            "sentiment_score": self.sentiment_score,
            "emotion": self.emotion,
            "emotion_score": self.emotion_score,
            "intent": self.intent,
            "intent_score": self.intent_score,
            "entities": [e.to_dict() for e in self.entities],
            "is_spam": self.is_spam,
            "spam_score": self.spam_score,
            "urgency": self.urgency,
            "model_version": self.model_version,
        }


@dataclass(frozen=True)
class Correction:
    """An agent's correction: *label* is the right answer for *task* on *text*."""

    text: str
    task: str
    label: str


@dataclass
class WorkspaceExamples:
    corrections: list[Correction] = field(default_factory=list)
    custom_intents: dict[str, list[str]] = field(default_factory=dict)  # intent name → example texts


@dataclass
class RegistryEntry:
    workspace: str
    version: str
    metrics: dict[str, Any]
    activated: bool
    path: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class UnknownLabelError(ValueError):
    pass


# ------------------------------------------------------------------------------------------------


class Analyzer:
    """Runs all tasks on texts. Thread-safe for concurrent reads (models are immutable)."""

    def __init__(
        self,
        featurizer: Featurizer,
        models: dict[str, LinearTextModel],
        version: str,
        share: Analyzer | None = None,
    ) -> None:
        """*share*: an analyzer (the default one) whose fused weight matrix is reused for the
        models this one has in common with it (same objects), to save memory per workspace."""
        missing = [m for m in training.TASK_MODELS if m not in models]
        if missing:
            raise ValueError(f"bundle is missing models: {missing}")
        self.featurizer = featurizer
        self.models = models
        self.model_version = version
        ecls = list(models["emotion"].classes)
        self._emo_idx = [ecls.index(k) for k in ("happy", "angry", "sad", "fear", "neutral")]
        self._fused: FusedModels = FusedModels(
            {name: models[name] for name in training.TASK_MODELS},
            share._fused if share is not None else None,
        )

    # -- labels -------------------------------------------------------------------------------
    def labels(self, task: str) -> list[str]:
        if task == "sentiment":
            return list(SENTIMENTS)
        if task == "emotion":
            return list(self.models["emotion"].classes)
        if task == "intent":
            return list(self.models["intent"].classes)
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")

    # -- probabilities ------------------------------------------------------------------------
    def _features(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Calibrated probabilities of every model for *texts* (one featurisation, one fused pass)."""
        coo, dense = self.featurizer.transform_coo(list(texts))
        return self._fused.proba(coo.rows, coo.cols, coo.counts, dense)

    def _proba(self, task: str, probs: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
        if task == "sentiment":
            return list(SENTIMENTS), self._sentiment(probs)
        if task == "polarity":  # pos/neg only: the domain-routed mixture of the two polarity models
            return ["pos", "neg"], self._polarity(probs)
        if task not in ("emotion", "intent"):
            raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        return list(self.models[task].classes), probs[task]

    def _polarity(self, probs: dict[str, np.ndarray]) -> np.ndarray:
        """[p(pos), p(neg)]: review and social polarity models mixed by p(review domain)."""
        g = probs["domain"][:, :1]  # [review, social]
        soc = probs["polarity"]  # [neg, pos]
        rev = probs["polarity_review"]
        p = g * rev + (1 - g) * soc
        return np.asarray(p[:, ::-1])

    def _sentiment(self, probs: dict[str, np.ndarray]) -> np.ndarray:
        """[p(pos), p(neg), p(neutral)]. p(neutral) averages the subjectivity model and the emotion
        model's neutral share; the pos/neg split averages the routed polarity models and the emotion
        model's happy vs angry+sad+fear share (weights SENTIMENT_MIX, chosen on the dev splits)."""
        pol = self._polarity(probs)
        p_neu_s = probs["subjectivity"][:, 0]  # [neutral, subj]
        emo = probs["emotion"]
        e_pos = emo[:, self._emo_idx[0]]
        e_neg = emo[:, self._emo_idx[1]] + emo[:, self._emo_idx[2]] + emo[:, self._emo_idx[3]]
        e_neu = emo[:, self._emo_idx[4]]
        w_neu, w_pol = SENTIMENT_MIX
        p_neu = w_neu * e_neu / np.maximum(e_pos + e_neg + e_neu, 1e-9) + (1 - w_neu) * p_neu_s
        share_pos = w_pol * e_pos / np.maximum(e_pos + e_neg, 1e-9) + (1 - w_pol) * pol[:, 0]
        return np.stack([(1 - p_neu) * share_pos, (1 - p_neu) * (1 - share_pos), p_neu], axis=1)

    def _restricted(
        self, classes: list[str], p: np.ndarray, labels: Sequence[str] | None
    ) -> list[tuple[str, float]]:
        if labels:
            unknown = [lab for lab in labels if lab not in classes]
            if unknown:
                raise UnknownLabelError(f"unknown label(s) {', '.join(unknown)}; known: {', '.join(classes)}")
            cols = [classes.index(lab) for lab in labels]
            p = p[:, cols]
            classes = list(labels)
            p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
        best = p.argmax(axis=1)
        return [(classes[int(b)], float(p[i, b])) for i, b in enumerate(best)]

    def predict(
        self, task: str, texts: Sequence[str], labels: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """(label, calibrated probability) per text; *labels* restricts the answer to those labels
        (probabilities renormalised over them)."""
        self.labels(task)  # validates the task
        if not texts:
            return []
        feats = self._features(texts)
        if task == "sentiment" and labels and set(labels) <= {"pos", "neg"}:
            classes, p = self._proba("polarity", feats)
        else:
            classes, p = self._proba(task, feats)
        return self._restricted(classes, p, labels)

    # -- triage ---------------------------------------------------------------------------------
    def analyze(self, text: str, *, catalogue: Sequence[str] = (), followers: int | None = None) -> Triage:
        return self.analyze_many([text], catalogue=catalogue, followers=[followers])[0]

    def analyze_many(
        self,
        texts: Sequence[str],
        *,
        catalogue: Sequence[str] = (),
        followers: Sequence[int | None] | int | None = None,
    ) -> list[Triage]:
        if not texts:
            return []
        if followers is None or isinstance(followers, int):
            fol: Sequence[int | None] = [followers] * len(texts)
        else:
            fol = followers
            if len(fol) != len(texts):
                raise ValueError("followers must have one entry per text")
        probs = self._features(texts)
        emo_cls, emo_p = self._proba("emotion", probs)
        sent_cls, sent_p = list(SENTIMENTS), self._sentiment(probs)
        int_cls, int_p = self._proba("intent", probs)
        rows = np.arange(len(texts))
        s_best, e_best, n_best = sent_p.argmax(axis=1), emo_p.argmax(axis=1), int_p.argmax(axis=1)
        s_score = sent_p[rows, s_best].tolist()
        s_best, e_best, n_best = s_best.tolist(), e_best.tolist(), n_best.tolist()
        e_score = emo_p[rows, e_best].tolist()
        n_score = int_p[rows, n_best].tolist()
        p_neg = sent_p[:, 1].tolist()
        spam_col = int_cls.index("spam") if "spam" in int_cls else None
        spam_p = int_p[:, spam_col].tolist() if spam_col is not None else [0.0] * len(texts)
        version = self.model_version
        out: list[Triage] = []
        for i, text in enumerate(texts):
            spam_score = spam_p[i]
            if spam_score < 0.9 and _SPAM_CONTACT.search(text) and _URL.search(text):
                spam_score = 0.9
            is_spam = spam_score >= 0.5
            intent = int_cls[n_best[i]]
            sentiment = sent_cls[s_best[i]]
            out.append(
                Triage(
                    sentiment=sentiment,
                    sentiment_score=s_score[i],
                    emotion=emo_cls[e_best[i]],
                    emotion_score=e_score[i],
                    intent=intent,
                    intent_score=n_score[i],
                    entities=extract_entities(text, catalogue),
                    is_spam=is_spam,
                    spam_score=spam_score,
                    urgency=urgency(intent, sentiment, p_neg[i], fol[i], text, is_spam),
                    model_version=version,
                )
            )
        return out


def urgency(
    intent: str, sentiment: str, p_neg: float, followers: int | None, text: str, is_spam: bool
) -> str:
    """Priority from intent, negativity, urgent wording and the fan's influence (followers)."""
    if is_spam:
        return "low"
    score = {"lost_item": 2, "complaint": 2, "after_sales": 1, "inquiry": 1, "purchase_intent": 1}.get(
        intent, 0
    )
    if intent not in INTENTS:  # workspace-specific intents count as service requests
        score = 1
    if p_neg >= 0.8:
        score += 1
    if _URGENT_WORDS.search(text):
        score += 1
    if followers is not None:
        if followers >= 1_000_000:
            score += 2
        elif followers >= 10_000:
            score += 1
    if score <= 0:
        return "low"
    if score <= 2:
        return "normal"
    if score == 3:
        return "high"
    return "urgent"


# ------------------------------------------------------------------------------------------------
# Default models (cached on disk) and per-process analyzer cache

_lock = threading.RLock()
_analyzers: dict[str, Analyzer] = {}
_featurizer: Featurizer | None = None
_default_bundle: training.Bundle | None = None


def _get_featurizer() -> Featurizer:
    global _featurizer
    with _lock:
        if _featurizer is None:
            settings = get_settings()
            _featurizer = training.make_featurizer(
                Path(settings.data_dir), Path(settings.model_dir) / "lexicon"
            )
        return _featurizer


def default_bundle_dir() -> Path:
    settings = get_settings()
    return Path(settings.model_dir) / "default" / training.cache_key(Path(settings.data_dir))


def load_default_bundle() -> training.Bundle:
    """Load the cached default models, training them first if the cache is missing."""
    global _default_bundle
    with _lock:
        if _default_bundle is not None:
            return _default_bundle
        directory = default_bundle_dir()
        lock_path = directory.with_name(directory.name + ".lock")
        if not (directory / "meta.json").exists():
            directory.parent.mkdir(parents=True, exist_ok=True)
            with _file_lock(lock_path):
                if not (directory / "meta.json").exists():
                    t0 = time.perf_counter()
                    log.info("training default NLP models into %s", directory)
                    data_dir = Path(get_settings().data_dir)
                    if not (data_dir / "weibo_senti").exists():
                        raise FileNotFoundError(f"shared data not found in {data_dir} (set SCRM_DATA_DIR)")
                    bundle = training.train_bundle(data_dir)
                    bundle.meta["version"] = "default-" + directory.name
                    bundle.meta["train_seconds"] = round(time.perf_counter() - t0, 1)
                    bundle.meta["dev"] = dev_metrics(Analyzer(_get_featurizer(), bundle.models, "tmp"))
                    bundle.save(directory)
        _default_bundle = training.Bundle.load(directory)
        return _default_bundle


class _file_lock:
    """Exclusive lock on a file (POSIX flock), so parallel processes train only once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: Any = None

    def __enter__(self) -> None:
        import fcntl

        self.fd = self.path.open("w")
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.fd.close()


def get_analyzer(workspace: str | None = None) -> Analyzer:
    """Cached per process: the workspace's active model, else the default models."""
    key = workspace or ""
    with _lock:
        if key in _analyzers:
            return _analyzers[key]
        base = load_default_bundle()
        models = dict(base.models)
        version = str(base.meta.get("version", "default"))
        if workspace:
            active = registry().active(workspace)
            if active is None:  # no model of its own: the default analyzer (same object, no copy)
                analyzer = get_analyzer()
            else:
                bundle = training.Bundle.load(active)
                models.update(bundle.models)
                version = str(bundle.meta.get("version", version))
                analyzer = Analyzer(_get_featurizer(), models, version, share=get_analyzer())
        else:
            analyzer = Analyzer(_get_featurizer(), models, version)
        _analyzers[key] = analyzer
        return analyzer


def clear_cache() -> None:
    """Forget loaded analyzers (e.g. after a settings change in tests)."""
    global _default_bundle, _featurizer
    with _lock:
        _analyzers.clear()
        _default_bundle = None
        _featurizer = None


def dev_metrics(analyzer: Analyzer, data_dir: Path | None = None) -> dict[str, Any]:
    """Scores of *analyzer* on every dev split (see datasets.dev_sets and intent_dev.jsonl)."""
    from . import datasets, intent_data

    ddir = Path(data_dir or get_settings().data_dir)
    out: dict[str, Any] = {}
    for name, (kind, data) in datasets.dev_sets(ddir).items():
        if not len(data):
            continue
        if kind == "sentiment2":
            pred = [p for p, _ in analyzer.predict("sentiment", data.texts, ["pos", "neg"])]
            labels = ["pos", "neg"]
        elif kind == "sentiment3":
            pred = [p for p, _ in analyzer.predict("sentiment", data.texts)]
            labels = ["pos", "neg", "neutral"]
        else:
            pred = [p for p, _ in analyzer.predict("emotion", data.texts)]
            labels = list(EMOTIONS)
        out[name] = training.scores(data.labels, pred, labels)
    dev = intent_data.handwritten_dev()
    if dev:
        texts = [t for t, _ in dev]
        gold = [y for _, y in dev]
        pred = [p for p, _ in analyzer.predict("intent", texts, list(INTENTS))]
        out["intent_dev_handwritten"] = training.scores(gold, pred, list(INTENTS))
    return out


INDEPENDENT_INTENT_FILES = {
    # labelled by someone other than the author of the intent training data; evaluation only
    "intent_independent": "intents_independent.jsonl",
    "intent_demo_day": "day.jsonl",
}


def independent_intent_metrics(analyzer: Analyzer, directory: Path | None = None) -> dict[str, Any]:
    """Intent scores on the independently written sets in ``scrm/demo/data`` (never trained on):
    ``intents_independent.jsonl`` ({"text", "label"}) and the fan events of ``day.jsonl`` that
    have a text (label ``truth.intent``). Missing files are skipped."""
    ddir = directory or Path(__file__).resolve().parent.parent / "demo" / "data"
    out: dict[str, Any] = {}
    for name, fname in INDEPENDENT_INTENT_FILES.items():
        path = ddir / fname
        if not path.exists():
            continue
        texts: list[str] = []
        gold: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            label = obj.get("label") or (obj.get("truth") or {}).get("intent")
            if obj.get("text") and label in INTENTS:
                texts.append(str(obj["text"]))
                gold.append(str(label))
        if texts:
            pred = [p for p, _ in analyzer.predict("intent", texts, list(INTENTS))]
            out[name] = training.scores(gold, pred, list(INTENTS))
    return out


# ------------------------------------------------------------------------------------------------
# Workspace examples provider (set by the application to a DB-backed function)

WorkspaceExamplesProvider = Callable[[str], WorkspaceExamples]
_provider: WorkspaceExamplesProvider | None = None


def set_workspace_examples_provider(fn: WorkspaceExamplesProvider | None) -> None:
    """Register the function that returns a workspace's corrections and custom intents."""
    global _provider
    _provider = fn


def has_workspace_examples_provider() -> bool:
    return _provider is not None


def get_workspace_examples(workspace: str) -> WorkspaceExamples:
    if _provider is None:
        raise LookupError(
            "no workspace examples provider is registered "
            "(scrm.nlp.service.set_workspace_examples_provider); cannot use --workspace"
        )
    return _provider(workspace)


# ------------------------------------------------------------------------------------------------
# Registry and workspace training


def _slug_ok(workspace: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", workspace):
        raise ValueError(f"invalid workspace slug {workspace!r}")
    return workspace


def is_holdout(text: str) -> bool:
    """Deterministic 25% of corrections held out to judge a new model."""
    return hashlib.sha256(text.strip().encode()).digest()[0] < 64


def split_corrections(corrections: Sequence[Correction]) -> tuple[list[Correction], list[Correction]]:
    train: list[Correction] = []
    held: list[Correction] = []
    for c in corrections:
        (held if is_holdout(c.text) else train).append(c)
    return train, held


def holdout_accuracy(analyzer: Analyzer, held: Sequence[Correction]) -> float | None:
    if not held:
        return None
    ok = 0
    for task in TASKS:
        items = [c for c in held if c.task == task]
        if not items:
            continue
        known = set(analyzer.labels(task))
        preds = analyzer.predict(task, [c.text for c in items])
        ok += sum(p == c.label and c.label in known for (p, _), c in zip(preds, items, strict=True))
    return ok / len(held)


class ModelRegistry:
    """File-based registry: ``model_dir/registry/<workspace>/<version>/`` holds the retrained task
    models and ``meta.json`` (evaluation); ``active.json`` names the active version."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _ws(self, workspace: str) -> Path:
        return self.root / _slug_ok(workspace)

    def versions(self, workspace: str) -> list[dict[str, Any]]:
        ws = self._ws(workspace)
        out = []
        for d in sorted(ws.glob("v*")):
            if (d / "meta.json").exists():
                out.append(json.loads((d / "meta.json").read_text(encoding="utf-8")))
        return out

    def active_version(self, workspace: str) -> str | None:
        p = self._ws(workspace) / "active.json"
        if not p.exists():
            return None
        return str(json.loads(p.read_text(encoding="utf-8"))["version"])

    def active(self, workspace: str) -> Path | None:
        v = self.active_version(workspace)
        return None if v is None else self._ws(workspace) / v

    def next_version(self, workspace: str) -> str:
        ws = self._ws(workspace)
        nums = [int(d.name[1:]) for d in ws.glob("v*") if d.name[1:].isdigit()]
        return f"v{(max(nums) + 1 if nums else 1):04d}"

    def consider(
        self, workspace: str, bundle: training.Bundle, candidate: Analyzer, held: Sequence[Correction]
    ) -> RegistryEntry:
        """Store *bundle* as a new version; activate it only if it is not worse than the current
        model (active version, else default) on the held-out corrections."""
        with _lock:
            current = get_analyzer(workspace)
            new_acc = holdout_accuracy(candidate, held)
            old_acc = holdout_accuracy(current, held)
            activated = new_acc is None or old_acc is None or new_acc >= old_acc - 1e-9
            version = self.next_version(workspace)
            metrics = {
                "holdout_n": len(held),
                "holdout_accuracy": new_acc,
                "previous_version": current.model_version,
                "previous_holdout_accuracy": old_acc,
            }
            bundle.meta.update(
                {
                    "workspace": workspace,
                    "version": f"{workspace}-{version}",
                    "metrics": metrics,
                    "activated": activated,
                }
            )
            path = self._ws(workspace) / version
            path.parent.mkdir(parents=True, exist_ok=True)
            bundle.save(path)
            if activated:
                tmp = self._ws(workspace) / "active.json.tmp"
                tmp.write_text(json.dumps({"version": version}), encoding="utf-8")
                tmp.replace(self._ws(workspace) / "active.json")
                _analyzers.pop(workspace, None)
            log.info(
                "workspace %s: %s holdout %s vs %s activated=%s",
                workspace,
                version,
                new_acc,
                old_acc,
                activated,
            )
            return RegistryEntry(workspace, f"{workspace}-{version}", metrics, activated, str(path))


def registry() -> ModelRegistry:
    return ModelRegistry(Path(get_settings().model_dir) / "registry")


CORRECTION_WEIGHT = 8.0
CUSTOM_INTENT_BOOST = 3.0


def build_workspace_bundle(examples: WorkspaceExamples, train_part: Sequence[Correction]) -> training.Bundle:
    """Retrain the task models touched by the corrections/custom intents: base data + examples."""
    data_dir = Path(get_settings().data_dir)
    by_task: dict[str, list[Correction]] = {}
    for c in train_part:
        if c.task not in TASKS:
            raise ValueError(f"correction for unknown task {c.task!r}")
        by_task.setdefault(c.task, []).append(c)
    tasks = set(by_task)
    if examples.custom_intents:
        tasks.add("intent")
    if not tasks:
        return training.Bundle(models={}, meta={"retrained": []})
    base = training.base_training_sets(data_dir)
    featurizer = _get_featurizer()
    models: dict[str, LinearTextModel] = {}
    for task in sorted(tasks):
        corr = by_task.get(task, [])
        if task == "sentiment":
            pol, rev = _copy(base["polarity"]), _copy(base["polarity_review"])
            subj = _copy(base["subjectivity"])
            for c in corr:
                if c.label not in SENTIMENTS:
                    raise ValueError(f"unknown sentiment label {c.label!r}")
                subj.add(c.text, "neutral" if c.label == "neutral" else "subj", CORRECTION_WEIGHT)
                if c.label != "neutral":
                    pol.add(c.text, c.label, CORRECTION_WEIGHT)
                    rev.add(c.text, c.label, CORRECTION_WEIGHT)
            for name, data in (("polarity", pol), ("polarity_review", rev), ("subjectivity", subj)):
                models[name] = training.fit_task(featurizer, name, data, training.FIXED_CLASSES[name])
        elif task == "emotion":
            emo = _copy(base["emotion"])
            for c in corr:
                if c.label not in EMOTIONS:
                    raise ValueError(f"unknown emotion label {c.label!r}")
                emo.add(c.text, c.label, CORRECTION_WEIGHT)
            models["emotion"] = training.fit_task(featurizer, "emotion", emo, list(EMOTIONS))
        else:
            intents = _copy(base["intent"])
            custom = examples.custom_intents
            for c in corr:
                if c.label not in INTENTS and c.label not in custom:
                    raise ValueError(f"unknown intent {c.label!r} (add it as a custom intent first)")
                intents.add(c.text, c.label, CORRECTION_WEIGHT)
            for name, texts in custom.items():
                if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
                    raise ValueError(f"invalid intent name {name!r} (lower-case letters, digits, _)")
                if not texts:
                    raise ValueError(f"custom intent {name!r} needs at least one example")
                # few examples: repeat them with light variations so the class has enough mass
                for t in texts:
                    for variant in _variants(t):
                        intents.add(variant, name, CORRECTION_WEIGHT)
            classes = sorted(set(intents.labels))
            model = training.fit_task(featurizer, "intent", intents, classes)
            # a workspace's own intents are usually special cases of a base intent (mostly inquiry or
            # after_sales) described by a few examples: their prior odds are raised 3×, so that
            # a message that fits both goes to the workspace's intent
            for name in custom:
                model.calib_c[model.classes.index(name)] += np.log(CUSTOM_INTENT_BOOST)
            models["intent"] = model
    return training.Bundle(models=models, meta={"retrained": sorted(models)})


def _copy(data: Labeled) -> Labeled:
    return Labeled(list(data.texts), list(data.labels), list(data.weights))


def _variants(text: str) -> list[str]:
    t = text.strip()
    out = [t, t + "。", "@客服 " + t, t + " 谢谢", "你好，" + t, t.replace("，", " ") + "？"]
    # the usual polite openers, so that "请问…" phrasings of a custom intent are not read as the
    # base 'inquiry' intent (whose training data is full of them)
    out += ["请问" + t, "想问一下，" + t, "客服你好，" + t]
    return list(dict.fromkeys(v for v in out if v))


def train_workspace(workspace: str, examples: WorkspaceExamples) -> RegistryEntry:
    """Retrain *workspace*'s models from base data + its corrections (+ custom intents), register
    the new version and activate it if it is not worse on the held-out corrections."""
    _slug_ok(workspace)
    train_part, held = split_corrections(examples.corrections)
    bundle = build_workspace_bundle(examples, train_part)
    base = load_default_bundle()
    models = dict(base.models)
    active = registry().active(workspace)
    if active is not None:
        models.update(training.Bundle.load(active).models)
    models.update(bundle.models)
    # keep a complete set of retrained models in the version (inherit the active ones)
    if active is not None:
        for name, model in training.Bundle.load(active).models.items():
            bundle.models.setdefault(name, model)
    candidate = Analyzer(_get_featurizer(), models, f"{workspace}-candidate", share=get_analyzer())
    bundle.meta["n_corrections"] = len(examples.corrections)
    bundle.meta["custom_intents"] = {k: len(v) for k, v in examples.custom_intents.items()}
    return registry().consider(workspace, bundle, candidate, held)
