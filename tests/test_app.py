"""The web demo (`jif-fastai demo-app`) in a real browser: started on 127.0.0.1, driven by headless Chromium (Playwright
with the system `chromium`): upload a sample image, fill two fields, press Predict, and the page must show the class and
the probabilities `load_jif(...).predict` gives for the same inputs. The screenshot lands in the test's output folder
(and, with JIF_UPDATE_SCREENSHOT=1, in nbs/images/ for the book)."""
import os, re, shutil, warnings
from pathlib import Path
import pytest
from conftest import in_process, REPO

pytest.importorskip('gradio', reason='the [app] extra (gradio) is not installed: pip install "jif_fastai[app]"')
sync_api = pytest.importorskip('playwright.sync_api', reason='playwright is not installed (a dev dependency)')
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking']
os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'

from jif_fastai.inference import load_jif
from jif_fastai.app import launch_demo


def _votes(page) -> dict:
    "{class: [fused, joint, image, meta]} read from the page's votes table."
    rows = {}
    for row in page.locator('#votes [role=row]').all():             # the grid's ARIA roles (its tables are layout)
        cells = [c.strip() for c in row.locator('[role=gridcell]').all_inner_texts()]
        if len(cells) == 5 and re.fullmatch(r'[0-9.]+', cells[1]): rows[cells[0]] = [float(x) for x in cells[1:]]
    return rows


@pytest.mark.skipif(CHROMIUM is None, reason='no system chromium on PATH (apt-get install chromium)')
def test_page_shows_what_the_library_predicts(sample_model, tmp_path):
    mdir, rows = sample_model
    image = rows.iloc[0].image
    demo = launch_demo(str(mdir), port=0, block=False)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport=dict(width=1280, height=1400))
            page.goto(demo.local_url); page.wait_for_selector('#predict')
            page.set_input_files('#photo input[type=file]', image)
            page.locator('#field-age input, #field-age textarea').first.fill('61')
            page.locator('#field-region input').click()
            page.get_by_role('option', name='FACE', exact=True).click()
            page.click('#predict')
            page.wait_for_selector('#cam img', timeout=120_000)
            page.wait_for_function("document.querySelectorAll('#votes [role=gridcell]').length >= 10")
            top = page.locator('#fused [data-testid="label-output-value"]').inner_text().strip()
            votes, banner = _votes(page), page.locator('#banner').inner_text()
            page.screenshot(path=tmp_path/'demo_app.png', full_page=True)
            browser.close()
    finally: demo.close()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        label, probs, per_branch = load_jif(mdir).predict(image, dict(age=61, region='FACE'))
    assert top == label
    assert list(votes) == list(probs)
    for c, (fused, *branches) in votes.items():   # the page rounds to 4 decimals; the same CPU computed both
        assert abs(fused - probs[c]) <= 6e-5, (c, fused, probs[c])
        assert all(abs(v - per_branch[b][c]) <= 6e-5 for v, b in zip(branches, ['joint', 'image', 'meta']))
    assert banner.startswith('⚠️ not recorded:') and 'age' not in banner.split('—')[0].split(', ') and 'extrapolates' not in banner
    assert (tmp_path/'demo_app.png').stat().st_size > 10_000
    if os.environ.get('JIF_UPDATE_SCREENSHOT') == '1':
        (REPO/'nbs'/'images').mkdir(exist_ok=True)
        shutil.copy(tmp_path/'demo_app.png', REPO/'nbs'/'images'/'demo_app.png')


def test_cli_demo_app_errors(capsys, tmp_path):
    code, o, e = in_process(capsys, 'demo-app', tmp_path/'nothing')
    assert code == 2 and 'model folder not found' in e and len(e.strip().splitlines()) == 1
    code, o, e = in_process(capsys, 'demo-app')
    assert code == 2 and 'the following arguments are required: model' in e


def test_cli_demo_app_without_gradio(capsys, tmp_path, monkeypatch, sample_model):
    import builtins
    real = builtins.__import__
    def no_gradio(name, *a, **kw):
        if name == 'gradio' or name.startswith('gradio.'): raise ModuleNotFoundError("No module named 'gradio'")
        return real(name, *a, **kw)
    monkeypatch.setattr(builtins, '__import__', no_gradio)
    code, o, e = in_process(capsys, 'demo-app', sample_model[0])
    assert code == 2 and e.strip() == 'jif-fastai demo-app: error: the web demo needs Gradio, an optional dependency: pip install "jif_fastai[app]"'
