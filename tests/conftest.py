"Shared fixtures: the real publisher files in ../shared/data (present in this project's CI)."
from pathlib import Path
import pytest
import jif_fastai.cli as cli

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent/'shared'/'data'

@pytest.fixture(scope='session')
def real_data():
    "Path to ../shared/data, or skip when absent (e.g. a user's clone without it)."
    if not DATA.exists(): pytest.skip(f"real dataset files not found at {DATA}")
    return DATA

def in_process(capsys, *argv):
    "`jif_fastai.cli.main(argv)` in this process; (exit status, stdout, stderr)."
    try: code = cli.main(list(map(str, argv)))
    except SystemExit as e: code = e.code
    o, e = capsys.readouterr()
    return code, o, e
