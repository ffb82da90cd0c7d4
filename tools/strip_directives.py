"""Prepare executed notebook copies for Jupyter Book (tools/place_chapters.py calls `process_cell` on each cell of the
copies it places in book/; standalone it prepares every notebook of a folder).

Usage: python tools/strip_directives.py FOLDER

For every notebook in the folder (in place, idempotent):

* nbdev `#|` directives become Jupyter Book cell tags, then the directive lines are removed so the book shows
  plain code:

  =====================================  ===========================================================
  directive                              in the book
  =====================================  ===========================================================
  ``#| hide``, ``#| include: false``     ``remove-cell``  (not shown at all)
  ``#| colab``                           ``remove-cell``  (the "install on Colab" cell)
  ``#| echo: false``                     ``remove-input`` (output only)
  ``#| output: false``                   ``remove-output`` (code only)
  ``#| export`` / ``exporti`` / ...      code stays visible: it is the library source
  ``#| default_exp``, ``notest``, ...    line removed; a cell left empty is removed
  ``code  #| hide_line``                 that line removed
  =====================================  ===========================================================

* markdown outputs (nbdev's `show_doc` writes ``---`` before each signature) lose their thematic breaks: docutils
  cannot place a transition inside a cell output and the build would crash. Headings in outputs are rendered by
  MyST-NB as rubrics, so they stay.
* the "Open in Colab" badge image (see tools/add_colab.py), which points at colab.research.google.com, is
  replaced by the copy in book/_static so that the site loads nothing from other hosts.
"""
import json, re, sys
from pathlib import Path

_re_dir = re.compile(r'^\s*#\s*\|\s*(.*?)\s*$')        # a directive line: `#| name[: value]`
_re_hide_line = re.compile(r'#\s*\|\s*hide_line\s*$')
REMOVE_CELL = {'hide', 'colab'}
COLAB_BADGE = 'https://colab.research.google.com/assets/colab-badge.svg'
LOCAL_BADGE = '/_static/colab-badge.svg'   # a path starting with / is relative to the book's source folder

def _src(cell): return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']

def parse_directives(src:str) -> tuple:
    "Split `src` into ({directive: value}, source without directive lines)."
    dirs, keep = {}, []
    for line in src.splitlines():
        if _re_hide_line.search(line): continue
        m = _re_dir.match(line)
        if m:
            name, _, val = m.group(1).partition(':')
            name = name.strip()
            if name and ' ' in name: name, val = name.split(None, 1)[0], name.split(None, 1)[1]  # `#| default_exp x`
            if name: dirs[name.lower()] = val.strip().lower()
        else: keep.append(line)
    return dirs, '\n'.join(keep).strip('\n')

def tags_for(dirs:dict, body:str) -> set:
    "Jupyter Book tags implied by nbdev directives `dirs` for a cell whose remaining source is `body`."
    tags = set()
    if REMOVE_CELL & dirs.keys() or dirs.get('include') == 'false' or not body.strip(): tags.add('remove-cell')
    if dirs.get('echo') == 'false': tags.add('remove-input')
    if dirs.get('output') == 'false': tags.add('remove-output')
    return tags

_re_break = re.compile(r'^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$')
_re_fence = re.compile(r'^ {0,3}(`{3,}|~{3,})')

def drop_breaks(md:str) -> str:
    "Remove thematic breaks (`---`, `***`, `___` lines) outside code fences; keep setext underlines."
    out, fence, prev = [], None, ''
    for line in md.splitlines(True):
        m = _re_fence.match(line)
        if m and (fence is None or m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence)):
            fence = m.group(1) if fence is None else None
        elif fence is None and _re_break.match(line.rstrip('\n')) and not prev.strip(): line = ''
        out.append(line); prev = line if line else prev
    return ''.join(out).lstrip('\n')

_re_attrs = re.compile(r'(\]\([^)\s]*\))\{[^}\n]*\}')

def drop_link_attrs(md:str) -> str:
    "Remove Quarto link attributes (`[source](url){target=\"_blank\" ...}`, written by nbdev's `show_doc`), which MyST prints as text."
    return _re_attrs.sub(r'\1', md)

_re_bar_only = re.compile(r'^\s*(█\s*)*$|^\s*Epoch \d+/\d+ :.*$|^.*\|[█-]+\| [\d.]+% \[.*$')

def render_progress(text:str) -> str:
    "What a terminal would leave of fastprogress's text output: last state of each `\\r`-rewritten line, bars dropped."
    lines = [line.split('\r')[-1].rstrip() for line in text.split('\n')]
    return '\n'.join(l for l in lines if not _re_bar_only.match(l)) + ('\n' if text.endswith('\n') else '')

def process_cell(cell:dict) -> dict:
    "Convert one cell in place (idempotent)."
    if cell['cell_type'] == 'markdown':
        src = _src(cell)
        if COLAB_BADGE in src: cell['source'] = src.replace(COLAB_BADGE, LOCAL_BADGE)
        return cell
    if cell['cell_type'] != 'code': return cell
    dirs, body = parse_directives(_src(cell))
    tags = tags_for(dirs, body)
    if tags:
        md = cell.setdefault('metadata', {})
        md['tags'] = sorted(set(md.get('tags', [])) | tags)
    cell['source'] = body
    for out in cell.get('outputs', []):
        if out.get('output_type') == 'stream' and '\r' in _src(dict(source=out['text'])):
            out['text'] = render_progress(_src(dict(source=out['text'])))
    cell['outputs'] = [o for o in cell.get('outputs', []) if not (o.get('output_type') == 'stream' and not _src(dict(source=o['text'])).strip())]
    for out in cell.get('outputs', []):
        md = out.get('data', {}).get('text/markdown')
        if md is not None: out['data']['text/markdown'] = drop_link_attrs(drop_breaks(''.join(md) if isinstance(md, list) else md))
    return cell

def process_nb(path:Path) -> None:
    nb = json.loads(Path(path).read_text(encoding='utf-8'))
    for cell in nb['cells']: process_cell(cell)
    Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')

def main(args=None):
    args = sys.argv[1:] if args is None else args
    if len(args) != 1: sys.exit('usage: strip_directives.py FOLDER_WITH_NOTEBOOKS')
    paths = sorted(Path(args[0]).glob('*.ipynb'))
    for p in paths: process_nb(p)
    print(f'strip_directives: {len(paths)} notebook(s) prepared for the book in {args[0]}')

if __name__ == '__main__': main()
