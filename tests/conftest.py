"""Project-wide pytest settings. Area fixtures live in tests/<area>/conftest.py."""

import os

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
