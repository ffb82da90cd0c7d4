"""Give every notebook an "Open in Colab" badge and a Colab-only install cell (idempotent).

Usage: python tools/add_colab.py [NOTEBOOK_OR_FOLDER ...]      (default: nbs)

Each notebook is made to open with

1. a markdown cell holding the badge, right below the title cell (nbdev takes the title and description from the
   first markdown cell, so the badge must not come before it), linking to
   https://colab.research.google.com/github/jif-fastai/jif_fastai/blob/main/nbs/<name>.ipynb
2. (before the first other code cell) a code cell flagged ``#| colab`` that installs the package when, and only
   when, the notebook runs on Google Colab. It is also flagged ``#| hide``:
   - ``nbdev-test`` skips it (``tst_flags = "notest colab"`` in pyproject.toml),
   - the README (from index.ipynb) and the book leave it out (tools/strip_directives.py removes it),
   - on Colab it is an ordinary first cell.

Running it again updates both cells in place (e.g. after a rename) and never duplicates them. Notebooks are
written the way nbdev writes them; run ``nbdev-clean`` afterwards as usual.
"""
import hashlib, json, re, secrets, sys
from pathlib import Path

REPO = 'jif-fastai/jif_fastai'
BRANCH = 'main'
NBS = 'nbs'
BADGE_IMG = 'https://colab.research.google.com/assets/colab-badge.svg'
BADGE_MARK = 'colab-badge.svg'   # identifies our badge cell
INSTALL_MARK = '#| colab'        # identifies our install cell
# What Colab installs: THE one place that says it. jif_fastai is not on PyPI yet, so the notebooks install the
# repository's main branch; at the first release change this to 'jif_fastai==X.Y.Z' (the released version) and rerun
# `python tools/add_colab.py` (it rewrites the install cell of every notebook).
INSTALL_SPEC = 'git+https://github.com/jif-fastai/jif_fastai.git@main'
INSTALL_SRC = f"""#| hide
#| colab
# On Google Colab: install jif_fastai, and nbdev for `show_doc` (this cell is skipped by the tests and left out of the docs)
import sys
if 'google.colab' in sys.modules:
    !pip install -q '{INSTALL_SPEC}' nbdev"""

def colab_url(name:str) -> str: return f'https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/{NBS}/{name}'
def badge_src(name:str) -> str: return f'[![Open In Colab]({BADGE_IMG})]({colab_url(name)})'

_re_title = re.compile(r'^#\s+\S', re.MULTILINE)   # an H1, as nbdev's md_frontmatter expects

def _src(cell): return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']
def _lines(src:str) -> list: return src.splitlines(True)   # nbformat stores sources as lists of lines
def _is_badge(cell): return cell['cell_type'] == 'markdown' and BADGE_MARK in _src(cell) and 'colab.research.google.com' in _src(cell)
def _is_install(cell):
    return cell['cell_type'] == 'code' and any(l.replace(' ', '') == '#|colab' for l in _src(cell).splitlines())

def add_colab(nb:dict, name:str) -> dict:
    "Return `nb` with exactly one badge cell first and one install cell before the first other code cell."
    old = [c for c in nb['cells'] if _is_badge(c) or _is_install(c)]
    ids = {k: next((c.get('id') for c in old if test(c) and c.get('id')), None)
           for k, test in (('badge', _is_badge), ('install', _is_install))}
    cells = [c for c in nb['cells'] if c not in old]
    used = {c.get('id') for c in cells}
    def new_id():
        while (i := secrets.token_hex(4)) in used: pass
        used.add(i); return i
    stable = lambda kind: (i if (i := hashlib.sha1(f'{name}:{kind}'.encode()).hexdigest()[:8]) not in used else new_id())
    badge = {'cell_type': 'markdown', 'id': ids['badge'] or stable('colab-badge'), 'metadata': {}, 'source': _lines(badge_src(name))}
    install = {'cell_type': 'code', 'execution_count': None, 'id': ids['install'] or stable('colab-install'), 'metadata': {},
               'outputs': [], 'source': _lines(INSTALL_SRC)}
    # the badge goes right below the title cell: nbdev reads the title/description from the *first* markdown cell
    first_md = next((i for i, c in enumerate(cells) if c['cell_type'] == 'markdown'), None)
    at = first_md + 1 if first_md is not None and _re_title.search(_src(cells[first_md])) else 0
    cells.insert(at, badge)
    first_code = next((i for i, c in enumerate(cells) if c['cell_type'] == 'code'), len(cells))
    cells.insert(first_code, install)
    nb['cells'] = cells
    if nb.get('nbformat') == 4 and nb.get('nbformat_minor', 0) < 5: nb['nbformat_minor'] = 5   # ids need 4.5
    for c in cells:
        if 'id' not in c: c['id'] = new_id()
    return nb

def nb2str(nb:dict) -> str:
    "Serialise like nbdev (fastcore.nbio.nb2str): sorted keys, one-space indent, UTF-8, trailing newline."
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + '\n'

def process(path:Path) -> bool:
    "Add/refresh the Colab cells of the notebook at `path`; return True if the file changed."
    path = Path(path)
    old = path.read_text(encoding='utf-8')
    new = nb2str(add_colab(json.loads(old), path.name))
    if new != old: path.write_text(new, encoding='utf-8')
    return new != old

def main(args=None):
    args = sys.argv[1:] if args is None else args
    targets = [Path(a) for a in (args or [NBS])]
    paths = [p for t in targets for p in (sorted(t.glob('*.ipynb')) if t.is_dir() else [t])]
    changed = [p for p in paths if process(p)]
    print(f'add_colab: {len(changed)} of {len(paths)} notebook(s) updated')

if __name__ == '__main__': main()
