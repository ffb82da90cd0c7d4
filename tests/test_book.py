"""The tutorial site, checked as a reader would see it, plus the two book tools.

* Every chapter listed in book/_toc.yml has a built page.
* No page loads anything from another host (the site must work offline: MathJax is served from _static).
* The landing page and one model chapter open in headless Chromium (Debian's /usr/bin/chromium driven by
  Playwright, served from a loopback HTTP server) with no console error, no failed request, every <img>
  loaded and every link within the site alive; math is typeset; screenshots go to test-artifacts/ for a human
  to look at.
* tools/strip_directives.py and tools/add_colab.py do what they promise (no build needed).

The site tests skip with a message when the book has not been built (`make book` builds it before pytest).
JIF_BOOK=/path/to/book points them at another book folder (default: book/).
"""
import functools, http.server, importlib.util, json, os, re, shutil, sys, threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = Path(os.environ.get('JIF_BOOK', ROOT/'book'))
HTML = BOOK/'_build'/'html'
ART = ROOT/'test-artifacts'
CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']
MODEL_CHAPTER = 'nbs/06_fusion'

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
    nb_pages = [f for f in toc_files() if f.startswith('nbs/') and (HTML/f'{f}.html').is_file()]
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
           'data': {'text/markdown': ['---\n', '\n', '### double\n', '\n', '```python\n', 'def double(x)\n', '```\n'],
                    'text/plain': ['def double(x)']}}
    cell = sd.process_cell(_code('show_doc(double)', outputs=[out]))
    md = cell['outputs'][0]['data']['text/markdown']
    md = ''.join(md) if isinstance(md, list) else md
    assert not md.lstrip().startswith('---'), 'a transition inside an output crashes docutils'
    assert '### double' in md and '```python\ndef double(x)\n```' in md

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
