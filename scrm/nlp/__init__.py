"""Chinese message understanding: sentiment, emotion, intent, entities, spam and urgency.

See docs/nlp.md. Import the public API from here or from :mod:`scrm.nlp.service`.
"""

from .entities import Entity, extract_entities, mask_phone
from .service import (
    Analyzer,
    Correction,
    RegistryEntry,
    Triage,
    WorkspaceExamples,
    get_analyzer,
    set_workspace_examples_provider,
    train_workspace,
)

__all__ = [
    "Analyzer",
    "Correction",
    "Entity",
    "RegistryEntry",
    "Triage",
    "WorkspaceExamples",
    "extract_entities",
    "get_analyzer",
    "mask_phone",
    "set_workspace_examples_provider",
    "train_workspace",
]
