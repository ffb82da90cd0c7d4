"""Give each code cell the ids nbdev links to, so that `fusion.html#concatfusion` lands on the cell defining ConcatFusion.

nbdev's symbol index (jif_fastai/_modidx.py) points every exported function, class and method at
`<page>.html#<name in lower case>`, the name computed by nbdev from the cell's code: `def f` -> `f`, `class C` -> `c`,
a method `C.m` -> `c.m`, a `@patch`ed `def m(self:C)` -> `c.m` (nbdev.doclinks.patch_name). This extension parses
every visible code cell of a notebook page the same way and adds those names as ids of the cell's container, first
definition wins, never an id the page already uses (a section `mmfa` keeps its id; the anchor then lands on the
section). Cells that are not Python (shell escapes, magics) are skipped.
"""
import ast

from docutils import nodes

from nbdev.doclinks import patch_name   # nbdev's own naming of `@patch`ed methods (Class.method)

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)

def symbol_ids(code:str) -> list:
    "nbdev's anchors (lower case) for the functions, classes and methods defined at the top level of `code`."
    try: tree = ast.parse(code)
    except SyntaxError: return []
    out = []
    for t in tree.body:
        if isinstance(t, _DEFS):
            nm = patch_name(t)
            out += [n.lower() for n in (nm if isinstance(nm, list) else [nm])]
        if isinstance(t, ast.ClassDef):
            out += [f'{t.name}.{t2.name}'.lower() for t2 in t.body if isinstance(t2, _DEFS)]
    return out

def add_ids(app, doctree):
    if not str(app.env.doc2path(app.env.docname)).endswith('.ipynb'): return
    used = {i for n in doctree.findall(nodes.Element) for i in n.get('ids', [])}
    for cell in doctree.findall(lambda n: isinstance(n, nodes.container) and n.get('nb_element') == 'cell_code'):
        src = [n for n in cell.findall(nodes.literal_block)
               if isinstance(n.parent, nodes.container) and n.parent.get('nb_element') == 'cell_code_source']
        if not src: continue
        for i in symbol_ids(src[0].astext()):
            if i not in used: cell['ids'].append(i); used.add(i)

def setup(app):
    app.connect('doctree-read', add_ids)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
