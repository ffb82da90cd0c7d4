#!/usr/bin/env bash
# Fail if nbs/ and jif_fastai/ disagree (nbdev-export would change the package), or if a notebook is
# not nbdev-clean. Compares the tree before and after, so uncommitted-but-consistent work passes.
set -euo pipefail
cd "$(dirname "$0")/.."
snap() { find jif_fastai nbs README.md -type f \( -name '*.py' -o -name '*.ipynb' -o -name 'README.md' \) -not -path '*/.ipynb_checkpoints/*' -print0 | sort -z | xargs -0 sha256sum; }
before=$(snap)
nbdev-export
nbdev-clean
python tools/make_readme.py
after=$(snap)
if [ "$before" != "$after" ]; then
  echo "EXPORT DRIFT: nbdev-export/nbdev-clean changed these files (now rewritten; review and commit them together):" >&2
  diff <(echo "$before") <(echo "$after") | grep '^[<>]' | awk '{print $3}' | sort -u >&2
  exit 1
fi
echo "export check: notebooks and jif_fastai/ agree, notebooks are clean"
