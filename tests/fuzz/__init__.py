"""Property tests on hostile evidence (hypothesis; CI budget from tests/conftest.py)."""
