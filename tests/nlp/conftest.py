from __future__ import annotations

import pytest

from scrm.nlp import service
from scrm.nlp.service import Analyzer


@pytest.fixture(scope="session")
def analyzer() -> Analyzer:
    """The default analyzer; the first run trains and caches it under SCRM_MODEL_DIR."""
    return service.get_analyzer()
