#!/usr/bin/env bash
# The release path, as CI runs it (make wheel-check):
#  1. build the sdist and the wheel with the *declared minimum* setuptools (no build isolation, so that the floor in
#     pyproject.toml is what builds them), and `twine check --strict` both (the PyPI page renders);
#  2. the sdist holds the library, its licence files, the PyPI page and the changelog, and no tests;
#  3. a fresh virtual environment with only the wheel installed (no checkout, no test extra) runs what a new user
#     runs first (.ci/wheel_smoke.py).
# WORK (default /tmp/hrnas-wheel-check) holds the environments and the built files.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/hrnas-wheel-check}
PYTHON=${PYTHON:-python3}
rm -rf "$WORK/dist" "$WORK/wheel-venv"
mkdir -p "$WORK"

setuptools_floor=$(sed -n 's/^requires = \["setuptools>=\([0-9.]*\)".*/\1/p' pyproject.toml)
test -n "$setuptools_floor" || { echo "no setuptools floor found in pyproject.toml" >&2; exit 1; }
if [ ! -x "$WORK/build-venv/bin/python" ]; then
    "$PYTHON" -m venv "$WORK/build-venv"
fi
"$WORK/build-venv/bin/pip" install --quiet "setuptools==$setuptools_floor" build twine
echo "== build with setuptools $setuptools_floor (the declared minimum)"
# a copy of the tracked files, so that the build leaves nothing in the checkout
rm -rf "$WORK/src" && mkdir -p "$WORK/src"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$WORK/src"
(cd "$WORK/src" && "$WORK/build-venv/bin/python" -m build --no-isolation --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1) \
    || { tail -30 "$WORK/build.log"; exit 1; }
ls -l "$WORK/dist"
"$WORK/build-venv/bin/twine" check --strict "$WORK"/dist/*

echo "== sdist contents"
sdist=$(ls "$WORK"/dist/hrnas-*.tar.gz)
listing=$(tar tzf "$sdist")
for wanted in CHANGELOG.md LICENSE NOTICE docs/pypi.md pyproject.toml hrnas/__init__.py hrnas/py.typed; do
    grep -q "^hrnas-[^/]*/$wanted\$" <<<"$listing" || { echo "the sdist lacks $wanted" >&2; exit 1; }
done
if grep -q "^hrnas-[^/]*/tests/" <<<"$listing"; then
    echo "the sdist ships tests/ (MANIFEST.in prunes them: they need the checkout's helpers and data)" >&2
    exit 1
fi
echo "$(wc -l <<<"$listing") entries; no tests, changelog included"

echo "== a fresh environment with only the wheel"
"$PYTHON" -m venv "$WORK/wheel-venv"
"$WORK/wheel-venv/bin/pip" install --quiet "$WORK"/dist/hrnas-*.whl
"$WORK/wheel-venv/bin/python" -I .ci/wheel_smoke.py
