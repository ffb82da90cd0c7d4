"""The tutorial site, checked as a reader would see it, plus the two book tools.

* Every chapter listed in book/_toc.yml has a built page; every notebook in nbs/ has a line in _toc.yml.
* Links resolve: every module's `Docs:` URL (`.../fusion.html.md`), every page and anchor of nbdev's symbol index
  (jif_fastai/_modidx.py: `fusion.html#concatfusion`), every other URL of the site that the package prints, and every
  internal href/src of every built page (fragments included) names a file (and an id) the book build produced.
* No page loads anything from another host (the site must work offline: MathJax is served from _static).
* The landing page and one model chapter open in headless Chromium (Debian's /usr/bin/chromium driven by
  Playwright, served from a loopback HTTP server) with no console error, no failed request, every <img>
  loaded and every link within the site alive; math is typeset; screenshots go to test-artifacts/ for a human
  to look at.
* tools/strip_directives.py and tools/add_colab.py do what they promise (no build needed).

The site tests skip with a message when the book has not been built (`make book` builds it before pytest).
JIF_BOOK=/path/to/book points them at another book folder (default: book/).
"""
import functools, http.server, importlib, importlib.util, json, os, pkgutil, re, shutil, threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = Path(os.environ.get('JIF_BOOK', ROOT/'book'))
HTML = BOOK/'_build'/'html'
ART = ROOT/'test-artifacts'
CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']
MODEL_CHAPTER = 'fusion'

needs_book = pytest.mark.skipif(not (HTML/'index.html').exists(),
                                reason=f'book not built ({HTML/"index.html"} is absent): run `make book` first')

def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT/'tools'/f'{name}.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

# ---------------------------------------------------------------- table of contents

def toc_files(toc_path=None) -> list:
    "Every page of the book's _toc.yml (root first), without file extension."
    import yaml
    toc = yaml.safe_load(Path(toc_path or BOOK/'_toc.yml').read_text())
    out = [toc['root']]
    def walk(node):
        if isinstance(node, dict):
            if 'file' in node: out.append(node['file'])
            for k in ('parts', 'chapters', 'sections'): walk(node.get(k))
        elif isinstance(node, list):
            for n in node: walk(n)
    walk(toc)
    return [re.sub(r'\.(md|ipynb)$', '', f) for f in out]

@needs_book
def test_every_toc_chapter_is_built():
    missing = [f for f in toc_files() if not (HTML/f'{f}.html').is_file()]
    assert not missing, f'chapters in _toc.yml without a built page: {missing}'

def test_every_notebook_has_a_toc_line():
    "Each nbs/NN_name.ipynb is published as name.html (tools/place_chapters.py) and needs `- file: name` in _toc.yml."
    pc = _load_tool('place_chapters')
    toc = set(toc_files())
    names = {p.name: pc.page_name(p) for p in sorted((ROOT/'nbs').glob('*.ipynb'))}
    assert names, 'no notebooks in nbs/'
    missing = {nb: n for nb, n in names.items() if n not in toc}
    assert not missing, f'notebooks without a line in book/_toc.yml (add `- file: <name>`): {missing}'
    handwritten = {p.stem for p in BOOK.glob('*.md')}
    clash = {nb: n for nb, n in names.items() if n in handwritten}
    assert not clash, f"hand-written book pages that take a chapter's URL (rename the page): {clash}"
    orphans = [f for f in toc if f not in handwritten and f not in names.values()]
    assert not orphans, f'_toc.yml lines with neither a notebook in nbs/ nor a page in book/: {orphans}'

def test_module_chapters_in_reading_order():
    "The chapters that export a module come in the toc in their notebooks' order, the order they import each other."
    pc = _load_tool('place_chapters')
    nbs = [p for p in sorted((ROOT/'nbs').glob('*.ipynb')) if '#| default_exp' in p.read_text()]
    order = {pc.page_name(p): k for k, p in enumerate(nbs)}
    listed = [f for f in toc_files() if f in order]
    assert listed == sorted(listed, key=order.get), f"module chapters out of reading order in book/_toc.yml: {listed}"

# ---------------------------------------------------------------- links resolve

def site_baseurl() -> str:
    import yaml
    return yaml.safe_load((BOOK/'_config.yml').read_text())['html']['baseurl']

def site_file(url:str) -> Path:
    "The file under book/_build/html that the published `url` (which starts with the site's baseurl) is served from."
    base = site_baseurl().rstrip('/')
    assert url == base or url.startswith(base + '/'), f"{url} is not on the book's site {base}/ (html.baseurl)"
    rel = unquote(urlparse(url[len(base):]).path).lstrip('/')
    return HTML/rel/'index.html' if not rel or rel.endswith('/') or (HTML/rel).is_dir() else HTML/rel

class _Ids(HTMLParser):
    "Ids (and <a name>) of a page, and the URLs it links to or loads."
    def __init__(self):
        super().__init__(); self.ids, self.urls = set(), []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        if tag == 'a' and a.get('name'): self.ids.add(a['name'])
        for k in ('href', 'src'):
            if a.get(k) is not None: self.urls.append(a[k])

@functools.lru_cache(maxsize=None)
def _parsed(page:Path) -> _Ids:
    p = _Ids(); p.feed(page.read_text(encoding='utf-8', errors='replace')); return p

def jif_modules() -> list:
    "Every module of the package, imported."
    import jif_fastai
    names = ['jif_fastai'] + [m.name for m in pkgutil.walk_packages(jif_fastai.__path__, 'jif_fastai.')]
    return [importlib.import_module(n) for n in names]

@needs_book
def test_every_docs_url_resolves():
    "The `Docs:` line nbdev writes into each module's docstring names a page (.html.md) the book build produced."
    urls = {m.__name__: re.findall(r'^Docs: (\S+)', m.__doc__ or '', re.M) for m in jif_modules()}
    urls = {k: v[0] for k, v in urls.items() if v}
    assert len(urls) >= 10, f'expected a Docs: line in most modules, found {sorted(urls)}'
    missing = {m: u for m, u in urls.items() if not site_file(u).is_file()}
    assert not missing, f'Docs: URLs with no page in {HTML}: {missing}'
    for u in urls.values():   # the .html.md is the Markdown of the page next to it
        assert u.endswith('.html.md') and site_file(u[:-3]).is_file(), u

@needs_book
def test_every_modidx_link_resolves():
    "nbdev's symbol index: every `page.html#anchor` names a built page, and an element with that id on it."
    from jif_fastai._modidx import d
    base = site_baseurl()
    links = {sym: loc for mod in d['syms'].values() for sym, (loc, _) in mod.items()}
    assert links, 'empty symbol index'
    no_page, no_anchor = {}, {}
    for sym, loc in links.items():
        page, _, frag = loc.partition('#')
        f = site_file(urljoin(base, page))
        if not f.is_file(): no_page[sym] = loc
        elif frag and frag not in _parsed(f).ids: no_anchor[sym] = loc
    assert not no_page, f'_modidx links to pages the book does not have: {no_page}'
    assert not no_anchor, f'_modidx anchors with no such id on the page ({len(no_anchor)}): {no_anchor}'

SITE_URL_SOURCES = ('jif_fastai/*.py', 'nbs/*.ipynb', 'README.md', 'pyproject.toml')
_re_url_tail = r"""(?:/[^\s"'`<>)\]\\]*)?"""

@needs_book
def test_every_site_url_the_package_prints_resolves():
    "Any other URL of the published site in the package, the notebooks, the README or pyproject names a built file."
    found = {}
    for pat in SITE_URL_SOURCES:
        for f in ROOT.glob(pat):
            for u in re.findall(re.escape(site_baseurl().rstrip('/')) + _re_url_tail, f.read_text(encoding='utf-8')):
                found.setdefault(u.rstrip('.,;:'), str(f.relative_to(ROOT)))
    assert found, 'no URL of the site found (html.baseurl changed without the package?)'
    def ok(u):
        path, _, frag = u.partition('#'); f = site_file(path)
        return f.is_file() and (not frag or frag in _parsed(f).ids)
    missing = {u: src for u, src in found.items() if not ok(u)}
    assert not missing, f'site URLs that do not resolve (url: where): {missing}'

def _internal(url:str) -> bool:
    return bool(url.strip()) and not (urlparse(url).scheme or url.startswith('//'))

@needs_book
def test_no_broken_internal_links():
    "Every internal href/src of every built page names a file of the build, and an id on it when it has a #fragment."
    pages = [p for p in sorted(HTML.rglob('*.html')) if '_static' not in p.relative_to(HTML).parts]  # not the theme's Jinja macros
    assert len(pages) > 10, pages
    broken = {}
    for page in pages:
        for url in _parsed(page).urls:
            if not _internal(url): continue
            path, _, frag = url.partition('#')
            path = unquote(path.partition('?')[0])
            target = page if not path else (page.parent/path).resolve()
            if target.is_dir(): target = target/'index.html'
            bad = not target.is_file() or not target.is_relative_to(HTML.resolve())
            bad = bad or bool(frag and target.suffix == '.html' and unquote(frag) not in _parsed(target).ids)
            if bad: broken.setdefault(str(page.relative_to(HTML)), []).append(url)
    assert not broken, f'internal links to missing files or ids (page: links): {broken}'

# ---------------------------------------------------------------- no remote resources

class _Resources(HTMLParser):
    "Collect the URLs a page *loads* (not plain links)."
    def __init__(self):
        super().__init__(); self.urls = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ('script', 'img', 'iframe', 'source', 'audio', 'video', 'embed', 'input') and a.get('src'):
            self.urls.append(a['src'])
        if tag == 'link' and a.get('href'):
            rel = set((a.get('rel') or '').lower().split())
            if rel & {'stylesheet', 'preload', 'modulepreload', 'icon', 'shortcut', 'prefetch', 'manifest'}:
                self.urls.append(a['href'])
        if tag == 'object' and a.get('data'): self.urls.append(a['data'])

def _remote(url): return bool(urlparse(url).netloc) or url.startswith('//')

@needs_book
def test_pages_load_nothing_from_other_hosts():
    bad = {}
    for page in HTML.rglob('*.html'):
        p = _Resources(); p.feed(page.read_text(encoding='utf-8', errors='replace'))
        remote = [u for u in p.urls if _remote(u)]
        if remote: bad[str(page.relative_to(HTML))] = remote
    assert not bad, f'pages loading remote resources (the site must work offline): {bad}'

@needs_book
def test_mathjax_is_served_locally():
    assert (HTML/'_static'/'mathjax'/'tex-chtml.js').is_file(), 'local MathJax missing from _static/mathjax'

# ---------------------------------------------------------------- in the browser

@pytest.fixture(scope='module')
def server():
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True); t.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown(); httpd.server_close()

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    pw_api = pytest.importorskip('playwright.sync_api', reason='playwright not installed (pip install -e ".[dev]")')
    if not Path(CHROMIUM).exists(): pytest.skip(f'{CHROMIUM} not found (apt-get install chromium)')
    with pw_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp('chromium-profile')), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={'width': 1280, 'height': 900})
        ctx.set_default_timeout(60_000)
        yield ctx
        ctx.close()

def open_page(ctx, url:str):
    "Open `url`, let it settle (math typeset included); return (page, problems)."
    problems = []
    page = ctx.new_page()
    host = urlparse(url).netloc
    def route(r):
        if urlparse(r.request.url).netloc not in ('', host) and not r.request.url.startswith(('data:', 'blob:')):
            problems.append(f'remote request blocked: {r.request.url}'); r.abort()
        else: r.continue_()
    page.route('**/*', route)
    page.on('console', lambda m: m.type == 'error' and problems.append(f'console error: {m.text}'))
    page.on('pageerror', lambda e: problems.append(f'page error: {e}'))
    page.on('requestfailed', lambda r: problems.append(f'request failed: {r.url} ({r.failure})'))
    page.on('response', lambda r: r.status >= 400 and problems.append(f'HTTP {r.status}: {r.url}'))
    page.goto(url, wait_until='networkidle')
    page.wait_for_load_state('networkidle')
    page.evaluate("""async () => {
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
        await document.fonts.ready; }""")
    return page, problems

def image_report(page) -> list:
    "Load every <img> (lazy ones too); return [{src, ok, w}] ."
    return page.evaluate("""async () => {
        const imgs = [...document.images];
        imgs.forEach(i => { i.loading = 'eager'; });
        await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
        return imgs.map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth}));
    }""")

def check_page(ctx, server, rel:str, shot:str) -> dict:
    page, problems = open_page(ctx, f'{server}/{rel}')
    ART.mkdir(exist_ok=True)
    page.screenshot(path=str(ART/f'{shot}.png'))                        # what a reader sees first
    page.screenshot(path=str(ART/f'{shot}-full.png'), full_page=True)   # the whole page
    imgs = image_report(page)
    n_math = page.evaluate("() => document.querySelectorAll('.math').length")
    n_typeset = page.evaluate("() => document.querySelectorAll('mjx-container').length")
    mj_errors = page.evaluate("() => document.querySelectorAll('mjx-merror').length")
    links = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
    title = page.title()
    page.close()
    local = sorted({l.split('#')[0] for l in links if l.startswith(server + '/')})
    dead = [l for l in local if ctx.request.get(l).status >= 400]
    broken = [i['src'] for i in imgs if not i['ok']]
    assert not problems, f'{rel}: ' + '\n'.join(problems)
    assert not broken, f'{rel}: images that did not load: {broken}'
    assert not dead, f'{rel}: links to pages/files that do not exist: {dead}'
    if n_math: assert n_typeset >= n_math, f'{rel}: {n_math} math elements but {n_typeset} typeset by MathJax'
    assert not mj_errors, f'{rel}: {mj_errors} MathJax errors'
    return dict(images=imgs, n_math=n_math, title=title)

@needs_book
def test_landing_page(browser, server):
    r = check_page(browser, server, 'index.html', 'book-landing')
    assert any(i['src'].endswith('architecture.svg') and i['ok'] for i in r['images']), 'architecture figure missing'
    assert r['n_math'] > 0, 'the landing page shows the loss equation'

@needs_book
def test_model_chapter(browser, server):
    nb_pages = [f for f in toc_files() if (BOOK/f'{f}.ipynb').is_file() and (HTML/f'{f}.html').is_file()]
    if not nb_pages: pytest.skip('no notebook chapter built yet')
    rel = MODEL_CHAPTER if (HTML/f'{MODEL_CHAPTER}.html').is_file() else nb_pages[0]
    check_page(browser, server, f'{rel}.html', 'book-chapter')

# ---------------------------------------------------------------- tools (no build needed)

def _nb(cells): return {'cells': cells, 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
def _code(src, **kw): return {'cell_type': 'code', 'metadata': {}, 'outputs': [], 'execution_count': None, 'source': src, **kw}
def _md(src): return {'cell_type': 'markdown', 'metadata': {}, 'source': src}

def test_strip_directives_maps_flags_to_tags(tmp_path):
    sd = _load_tool('strip_directives')
    cells = [_code('#| hide\nimport os'), _code('#| colab\n!pip install -q jif_fastai'),
             _code('#| export\ndef f(x): return x'), _code('#|echo: false\nprint(1)'),
             _code('#| output: false\nx = 1'), _code('#| default_exp data'), _code(['#| notest\n', 'slow()']),
             _code('y = 2  #| hide_line\nz = 3'), _code('#| include: false\nsecret()'),
             _md('[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.x/nbs/a.ipynb)')]
    p = tmp_path/'a.ipynb'; p.write_text(json.dumps(_nb(cells)))
    sd.main([str(tmp_path)]); sd.main([str(tmp_path)])   # idempotent
    out = json.loads(p.read_text())['cells']
    tags = [c.get('metadata', {}).get('tags', []) for c in out]
    srcs = [c['source'] for c in out]
    assert tags[:9] == [['remove-cell'], ['remove-cell'], [], ['remove-input'], ['remove-output'], ['remove-cell'],
                        [], [], ['remove-cell']]
    assert srcs[2] == 'def f(x): return x' and srcs[6] == 'slow()' and srcs[7] == 'z = 3'
    assert not any('#|' in s for s in srcs[:9])
    assert '/_static/colab-badge.svg' in srcs[9] and 'assets/colab-badge.svg' not in srcs[9]
    assert 'https://colab.x/nbs/a.ipynb' in srcs[9]

def test_strip_directives_cleans_show_doc_output():
    sd = _load_tool('strip_directives')
    out = {'output_type': 'execute_result', 'metadata': {}, 'execution_count': 1,
           'data': {'text/markdown': ['---\n', '\n', '[source](https://github.com/x/y.py#L3){target="_blank" style="float:right"}\n', '\n',
                                      '### double\n', '\n', '```python\n', 'def double(x)\n', '```\n'],
                    'text/plain': ['def double(x)']}}
    cell = sd.process_cell(_code('show_doc(double)', outputs=[out]))
    md = cell['outputs'][0]['data']['text/markdown']
    md = ''.join(md) if isinstance(md, list) else md
    assert not md.lstrip().startswith('---'), 'a transition inside an output crashes docutils'
    assert '### double' in md and '```python\ndef double(x)\n```' in md
    assert '[source](https://github.com/x/y.py#L3)\n' in md and 'target=' not in md, 'Quarto link attributes would show as text'

def test_add_colab_idempotent(tmp_path):
    ac = _load_tool('add_colab')
    nb = _nb([_md('# Title\n\n> what it is'), _code('#| default_exp data'), _code('x = 1')])
    p = tmp_path/'08_structures.ipynb'; p.write_text(json.dumps(nb))
    assert ac.process(p) is True
    first = p.read_text()
    assert ac.process(p) is False and p.read_text() == first
    cells = json.loads(first)['cells']
    srcs = [''.join(c['source']) for c in cells]
    assert srcs[0].startswith('# Title'), 'the title cell stays first (nbdev reads the title from it)'
    assert 'https://colab.research.google.com/github/jif-fastai/jif_fastai/blob/main/nbs/08_structures.ipynb' in srcs[1]
    assert cells[2]['cell_type'] == 'code' and '#| colab' in srcs[2] and "'google.colab' in sys.modules" in srcs[2]
    assert srcs[3] == '#| default_exp data'
    assert sum('colab-badge' in s for s in srcs) == 1 and sum('#| colab' in s for s in srcs) == 1
    assert len({c['id'] for c in cells}) == len(cells)
    q = tmp_path/'06_new.ipynb'; shutil.copy(p, q)       # a renamed notebook gets its own link, no duplicate
    assert ac.process(q) is True
    srcs = [''.join(c['source']) for c in json.loads(q.read_text())['cells']]
    assert 'nbs/06_new.ipynb' in srcs[1] and sum('colab-badge' in s for s in srcs) == 1

def test_place_chapters_publishes_at_nbdev_urls(tmp_path):
    "nbs/06_fusion.ipynb -> book/fusion.ipynb (+ _markdown/fusion.html.md); links renamed; stale copies removed."
    pc = _load_tool('place_chapters')
    ex, book = tmp_path/'nbs', tmp_path/'book'; ex.mkdir(); book.mkdir()
    out = {'output_type': 'stream', 'name': 'stdout', 'text': 'torch.Size([2, 3])\n'}
    (ex/'06_fusion.ipynb').write_text(json.dumps(_nb([_md('# Fusion\n\nSee [data](01_data.ipynb#x), [site](https://a/01_data.ipynb)'),
                                                   _code('#| export\nclass ConcatFusion: pass', outputs=[out]),
                                                   _code('#| hide\nsecret()')])))
    (ex/'01_data.ipynb').write_text(json.dumps(_nb([_md('# Data')])))
    (ex/'index.ipynb').write_text(json.dumps(_nb([_md('# Quick start')])))
    (book/'old_name.ipynb').write_text('{}')
    assert pc.place(ex, book) == {'01_data': 'data', '06_fusion': 'fusion', 'index': 'quickstart'}
    assert sorted(p.name for p in book.glob('*.ipynb')) == ['data.ipynb', 'fusion.ipynb', 'quickstart.ipynb']
    cells = json.loads((book/'fusion.ipynb').read_text())['cells']
    assert '[data](data.ipynb#x)' in cells[0]['source'] and '(https://a/01_data.ipynb)' in cells[0]['source']
    assert cells[1]['source'] == 'class ConcatFusion: pass' and cells[2]['metadata']['tags'] == ['remove-cell']
    md = (book/'_markdown'/'fusion.html.md').read_text()
    assert md.startswith('# Fusion') and '```python\nclass ConcatFusion: pass\n```' in md and 'torch.Size([2, 3])' in md
    assert 'secret' not in md and '#|' not in md
    (book/'data.md').write_text('# Data, by hand')   # a hand-written page may not take a chapter's URL
    with pytest.raises(SystemExit, match='data.html'): pc.place(ex, book)

def test_symbol_anchors_match_nbdev():
    "book/_ext/symbol_anchors.py names cells as nbdev's _modidx does: lower case, Class.method, @patch."
    spec = importlib.util.spec_from_file_location('symbol_anchors', BOOK/'_ext'/'symbol_anchors.py')
    sa = importlib.util.module_from_spec(spec); spec.loader.exec_module(sa)
    code = 'class MetaBlock(nn.Module):\n    def __init__(self): pass\n    def forward(self, x): pass\n' \
           '@patch\ndef show(self:JIFLearner): pass\ndef create_fusion(): pass\nX = 1'
    assert sa.symbol_ids(code) == ['metablock', 'metablock.__init__', 'metablock.forward', 'jiflearner.show', 'create_fusion']
    assert sa.symbol_ids('!pip install x') == []

def test_strip_directives_renders_progress_bars():
    "fastprogress's text mode (\\r-rewritten bars) is reduced to what a terminal shows: the metrics table."
    sd = _load_tool('strip_directives')
    text = ('█\repoch     train_loss  time\n█\r\rEpoch 1/2 : |------| 0.00% [0/7 00:00<?]\rEpoch 1/2 : |██████| 100.00% [7/7 00:01<00:00]'
            '\rEpoch 1/2 :      \r0         3.28        00:01\n')
    cell = {'cell_type': 'code', 'source': 'learn.fit(2)', 'metadata': {}, 'outputs': [
        {'output_type': 'stream', 'name': 'stdout', 'text': text},
        {'output_type': 'stream', 'name': 'stdout', 'text': '█\r\rEpoch 1/2 : |--| 0.00% [0/3 00:00<?]\r'}]}
    out = sd.process_cell(cell)['outputs']
    assert len(out) == 1 and out[0]['text'] == 'epoch     train_loss  time\n0         3.28        00:01\n'
