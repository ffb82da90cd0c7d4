"""Keep the built site self-contained: no script or stylesheet from another host, no duplicate inline scripts.

* Thebe (live code cells via Binder) is off in _config.yml, but sphinx-thebe still adds its loader on every page,
  and with Sphinx 7 its inline configuration script is emitted twice (`const THEBE_JS_URL` declared twice: a
  JavaScript error on every page). Its assets are dropped while the theme's thebe launch button is off.
* Inline scripts added twice (same body) are de-duplicated.
* Any script or stylesheet that would still be loaded from another host is reported as a warning, which fails
  the build (`jupyter-book build --warningiserror`): the site must work offline.
"""
from sphinx.util import logging

logger = logging.getLogger(__name__)
_THEBE = ('sphinx-thebe.js', 'sphinx-thebe.css')

def _remote(name) -> bool: return str(name or '').startswith(('http://', 'https://', '//'))
def _key(asset): return (str(asset.filename or ''), tuple(sorted(asset.attributes.items())))

def _thebe_on(app) -> bool:
    return bool((app.config.html_theme_options or {}).get('launch_buttons', {}).get('thebe'))

def _is_thebe(asset) -> bool:
    name = str(asset.filename or '')
    return name.endswith(_THEBE) or 'THEBE_JS_URL' in asset.attributes.get('body', '')

def clean_assets(app, pagename, templatename, context, doctree):
    thebe = _thebe_on(app)
    for key in ('script_files', 'css_files'):
        assets = context.get(key)
        if assets is None: continue
        seen, keep = set(), []
        for a in assets:
            if (not thebe and _is_thebe(a)) or _key(a) in seen: continue
            seen.add(_key(a)); keep.append(a)
            if _remote(a.filename):
                logger.warning(f'{pagename}: {key[:-6]} loaded from another host: {a.filename} '
                               '(the site must work offline)', type='offline_assets')
        assets[:] = keep

def setup(app):
    app.connect('html-page-context', clean_assets, priority=900)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
