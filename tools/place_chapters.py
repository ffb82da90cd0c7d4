"""Place the executed notebooks where the book publishes them: at the URLs nbdev links to.

Usage: python tools/place_chapters.py book/nbs book

nbdev writes `Docs: <doc_host><doc_baseurl>/fusion.html.md` into every exported module and `fusion.html#concatfusion`
into jif_fastai/_modidx.py: the page name is the notebook's name with its numeric prefix stripped
(`nbdev.config.nbpath2html`: nbs/06_fusion.ipynb -> fusion.html). So each executed notebook in the first folder
(made by `make nbtest`) is copied to the book's source folder under that name (book/fusion.ipynb, published as
fusion.html), then:

* tools/strip_directives.py prepares the copy (nbdev `#|` flags -> cell tags, ...);
* links between notebooks (`[the data chapter](01_data.ipynb)`) are renamed to the published copies (`data.ipynb`);
* a Markdown rendering of the chapter is written to <book>/_markdown/<name>.html.md, which the book copies next to
  <name>.html (`html_extra_path` in book/_config.yml): the `.html.md` URL of the `Docs:` line.

index.ipynb (the Quick start, also the README) would be index.html, which is the book's landing page: it is published
as quickstart.html instead (nbdev links to no symbol in it).

Every *.ipynb directly in the book folder is a generated copy (git-ignored) and is replaced on each run; a copy that
would replace a hand-written page (book/<name>.md) is an error. Idempotent.
"""
import json, re, shutil, sys
from pathlib import Path
from nbdev.config import nbpath2html   # the rule nbdev's `Docs:` lines and _modidx follow

sys.path.insert(0, str(Path(__file__).resolve().parent))
import strip_directives

RENAME = {'index': 'quickstart'}   # published name for notebooks whose nbdev name is taken by the book itself
MD_DIR = '_markdown'                # <book>/_markdown/<name>.html.md -> <site>/<name>.html.md (html_extra_path)

def page_name(nb) -> str:
    "Published page name (no extension) of notebook `nb`: nbdev's `nbpath2html`, numeric prefix stripped."
    name = nbpath2html(Path(nb).name).stem
    return RENAME.get(name, name)

def _src(x): return ''.join(x) if isinstance(x, list) else (x or '')

def rename_links(md:str, names:dict) -> str:
    "Point Markdown links at notebooks (`](06_fusion.ipynb#x)`) to their published copies (`](fusion.ipynb#x)`)."
    def sub(m):
        target = m.group(2)
        return f'{m.group(1)}{names[target]}.ipynb' if target in names else m.group(0)
    return re.sub(r'(\]\((?:\./)?)([^()\s#/]+)\.ipynb', sub, md)

def to_markdown(nb:dict) -> str:
    "A plain Markdown rendering of a prepared notebook: what the HTML page shows, minus pictures and widgets."
    parts = []
    for cell in nb['cells']:
        tags = set(cell.get('metadata', {}).get('tags', []))
        if 'remove-cell' in tags: continue
        src = _src(cell['source']).strip('\n')
        if cell['cell_type'] == 'markdown':
            if src: parts.append(src)
            continue
        if cell['cell_type'] != 'code': continue
        if src and 'remove-input' not in tags: parts.append(f'```python\n{src}\n```')
        if 'remove-output' in tags: continue
        for out in cell.get('outputs', []):
            if out.get('output_type') == 'stream': text, md = _src(out.get('text')), None
            elif out.get('output_type') == 'error': text, md = f"{out.get('ename')}: {out.get('evalue')}", None
            else:
                data = out.get('data', {})
                md = _src(data.get('text/markdown')) or None
                text = _src(data.get('text/plain'))
                if not md and not text and any(k.startswith('image/') for k in data): md = '*(figure: see the HTML page)*'
            if md: parts.append(md.strip('\n'))
            elif text.strip(): parts.append(f'```\n{text.rstrip()}\n```')
    md = '\n\n'.join(parts) + '\n'
    return md.replace(f']({strip_directives.LOCAL_BADGE})', f']({strip_directives.LOCAL_BADGE.lstrip("/")})')  # next to the page

def place(executed:Path, book:Path) -> dict:
    "Copy every executed notebook in `executed` to `book` under its published name; return {notebook stem: name}."
    executed, book = Path(executed), Path(book)
    nbs = sorted(executed.glob('*.ipynb'))
    names = {p.stem: page_name(p) for p in nbs}
    seen = {}
    for stem, name in names.items():
        if name in seen: sys.exit(f'place_chapters: {seen[name]}.ipynb and {stem}.ipynb would both be published as {name}.html')
        seen[name] = stem
        for ext in ('.md', '.rst'):
            if (book/f'{name}{ext}').exists():
                sys.exit(f'place_chapters: {stem}.ipynb is published as {name}.html, which {book/(name + ext)} also '
                         f'claims: rename the hand-written page')
    for old in book.glob('*.ipynb'): old.unlink()   # copies of notebooks since renamed or deleted
    shutil.rmtree(book/MD_DIR, ignore_errors=True); (book/MD_DIR).mkdir()
    for p in nbs:
        dest = book/f'{names[p.stem]}.ipynb'
        nb = json.loads(p.read_text(encoding='utf-8'))
        for cell in nb['cells']:
            strip_directives.process_cell(cell)
            if cell['cell_type'] == 'markdown': cell['source'] = rename_links(_src(cell['source']), names)
        dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
        (book/MD_DIR/f'{names[p.stem]}.html.md').write_text(to_markdown(nb), encoding='utf-8')
    if (executed/'images').is_dir():   # pictures the notebooks link to as images/...
        shutil.rmtree(book/'images', ignore_errors=True); shutil.copytree(executed/'images', book/'images')
    return names

def main(args=None):
    args = sys.argv[1:] if args is None else args
    if len(args) != 2: sys.exit('usage: place_chapters.py FOLDER_WITH_EXECUTED_NOTEBOOKS BOOK_FOLDER')
    names = place(Path(args[0]), Path(args[1]))
    print(f'place_chapters: {len(names)} chapter(s) placed in {args[1]}: ' +
          ', '.join(f'{k} -> {v}.html' for k, v in names.items()))

if __name__ == '__main__': main()
