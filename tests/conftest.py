"Shared fixtures: the real publisher files in ../shared/data (present in this project's CI)."
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent/'shared'/'data'

@pytest.fixture(scope='session')
def real_data():
    "Path to ../shared/data, or skip when absent (e.g. a user's clone without it)."
    if not DATA.exists(): pytest.skip(f"real dataset files not found at {DATA}")
    return DATA
