"Write README.md from nbs/index.ipynb (markdown as is, code cells fenced, nbdev `#|` lines removed). --check: fail if stale."
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
nb = json.loads((root/'nbs'/'index.ipynb').read_text())
parts = []
for c in nb['cells']:
    src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
    if c['cell_type'] == 'markdown': parts.append(src.strip())
    elif c['cell_type'] == 'code':
        if re.search(r'^\s*#\s*\|\s*(hide|colab)\b', src, flags=re.M): continue   # hidden / Colab-only cells
        code = re.sub(r'^\s*#\s*\|.*\n?', '', src, flags=re.M).strip()
        if code: parts.append(f'```python\n{code}\n```')
text = '<!-- Generated from nbs/index.ipynb by tools/make_readme.py; edit the notebook, not this file. -->\n\n' + '\n\n'.join(parts) + '\n'
readme = root/'README.md'
if '--check' in sys.argv:
    if not readme.exists() or readme.read_text() != text:
        sys.exit('README.md is stale: run `python tools/make_readme.py` (it is generated from nbs/index.ipynb)')
    print('README.md matches nbs/index.ipynb')
else:
    readme.write_text(text); print('wrote README.md')
