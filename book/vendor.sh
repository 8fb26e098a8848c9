#!/usr/bin/env bash
# Refresh the JavaScript the static pages load, from the npm registry, so the built book works
# offline: require.js and the ipywidgets html-manager (widgets from saved state) and MathJax.
# Under book/_extra (Sphinx's html_extra_path), not _static: Jupyter Book injects every .js file
# of _static into every page, and each widget would then render three times.
# html-manager 1.x speaks the widget protocol of ipywidgets 8, which the book builds with.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
(cd "$tmp" && npm pack --silent @jupyter-widgets/html-manager@1.0.15 requirejs@2.3.8 mathjax@3.2.2 >/dev/null)
out=_extra/vendor
rm -rf "$out" && mkdir -p "$out/html-manager" "$out/mathjax/output/chtml/fonts"
for f in "$tmp"/*.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
cp "$tmp"/requirejs-*/package/require.js "$out/"
cp "$tmp"/jupyter-widgets-html-manager-*/package/dist/embed-amd.js "$tmp"/jupyter-widgets-html-manager-*/package/dist/*.woff* "$out/html-manager/"
cp "$tmp"/mathjax-*/package/es5/tex-chtml.js "$out/mathjax/"
cp -r "$tmp"/mathjax-*/package/es5/output/chtml/fonts/woff-v2 "$out/mathjax/output/chtml/fonts/"
for pkg in "$tmp"/*/package; do for lic in "$pkg"/LICENSE*; do [ -e "$lic" ] && cp "$lic" "$out/LICENSE-$(basename "$(dirname "$pkg")")"; done; done
rm -rf "$tmp"
du -sh "$out"
