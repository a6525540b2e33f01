#!/bin/bash
# Render the lab notebook as VS Code's Markdown preview shows it and check that nothing scrolls sideways.
#
#   scripts/preview-check.sh [OUT_DIR]          (default build/preview)
#
# Three notebooks: a real CPU run of examples/train_simplenet.py through `devagent run`, twice (the second with
# another learning rate), in a fresh git workspace; the H100 runs recorded on 2026-11-27, rendered by today's
# code (scripts/preview/recorded_gpu_run.py); and a distributed 2-GPU run with the per-GPU timeline of the
# synthetic trace (scripts/preview/distributed_gpu_run.py; screenshots OUT_DIR/dist-600.png, dist-1200.png).
# Each is rendered with markdown-it, as VS Code renders its preview (scripts/preview/render.js, installed from
# npm into OUT_DIR on first use), opened in headless Chromium at 600 and 1200 px, and measured: the page must
# not be wider than the window, and no entry heading may take more than two lines at 600 px. A screenshot of the GPU run section (600 px) is written to OUT_DIR/gpu-run.png;
# docs/assets/notebook-gpu-run-600px.png is that file, kept.
#
# Needs python3 with torch (the CPU run), node with npm, and chromium. Not part of `make test`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/build/preview}" && cd "${1:-$ROOT/build/preview}" && pwd)
PYTHON=${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3)}
CHROMIUM=${CHROMIUM:-chromium}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

if [ ! -d "$OUT/node/node_modules/markdown-it" ] || [ ! -d "$OUT/node/node_modules/@fontsource/noto-emoji" ]; then
  npm install --silent --no-audit --no-fund --prefix "$OUT/node" markdown-it@14 @fontsource/noto-emoji@5 >/dev/null
fi
export NODE_PATH="$OUT/node/node_modules"

# A real CPU run, twice, in a fresh workspace (HOME and devagent's files kept inside OUT).
WS="$OUT/cpu-workspace"
rm -rf "$WS" && mkdir -p "$WS"
cp "$ROOT/examples/train_simplenet.py" "$WS/"
(
  cd "$WS"
  export HOME="$OUT/home" DEVAGENT_HOME="$OUT/home/devagent"
  git init -q -b main && git add train_simplenet.py
  git -c user.name=preview -c user.email=preview@example.invalid commit -qm SimpleNet
  "$PYTHON" -m devagent run -- "$PYTHON" train_simplenet.py --epochs 3 --steps 30 >/dev/null
  "$PYTHON" -m devagent run -- "$PYTHON" train_simplenet.py --epochs 3 --steps 30 --lr 3e-3 >/dev/null
)
cp "$WS/lab-notebook.md" "$OUT/cpu.md"
mkdir -p "$OUT/lab-notebook.assets" && cp -r "$WS"/lab-notebook.assets/. "$OUT/lab-notebook.assets/" 2>/dev/null || true

"$PYTHON" "$ROOT/scripts/preview/recorded_gpu_run.py" "$OUT/gpu.md"
# A distributed run with the per-GPU timeline (the synthetic trace): its rows, the GPU activity table, the picture.
"$PYTHON" "$ROOT/scripts/preview/distributed_gpu_run.py" "$OUT/dist.md"
cp "$ROOT/docs/assets/h100-simplenet-run-2-loss.png" "$OUT/"
"$PYTHON" "$ROOT/scripts/preview/recorded_gpu_run.py" --only-run-2 --image h100-simplenet-run-2-loss.png \
  "$OUT/gpu-run.md"

chrome() {  # chrome WIDTH HEIGHT ARGS...: headless Chromium at that window size
  local width=$1 height=$2; shift 2
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --window-size="$width,$height" --virtual-time-budget=5000 "$@" 2>/dev/null
}

status=0
for name in cpu gpu gpu-run dist; do
  node "$ROOT/scripts/preview/render.js" "$OUT/$name.md" "$OUT/$name.html"
  for width in 600 1200; do
    chrome "$width" 900 --dump-dom "file://$OUT/$name.html" > "$OUT/$name-$width.dom.html"
    if ! "$PYTHON" - "$OUT/$name-$width.dom.html" "$name.md at $width px" <<'PY'; then status=1; fi
import html, json, re, sys
dom, what = open(sys.argv[1], encoding="utf-8").read(), sys.argv[2]
found = re.search(r'<pre id="preview-measure"[^>]*>(.*?)</pre>', dom, re.S)
if not found:
    sys.exit(f"{what}: no measurement (did the page load?)")
m = json.loads(html.unescape(found.group(1)))
problems = []
if m["scrollWidth"] > m["clientWidth"]:
    problems.append(f"scrolls sideways: {m['scrollWidth']} px wide in {m['clientWidth']} px")
problems += [f"wider than the page: {w}" for w in m["wide"]]
if m["viewport"] <= 600:
    problems += [f"heading on {h['lines']} lines: {h['text']}" for h in m["headings"] if h["lines"] > 2]
lines = max((h["lines"] for h in m["headings"]), default=0)
print(f"{what}: {'FAIL' if problems else 'ok'} — {m['scrollWidth']}/{m['clientWidth']} px, "
      f"{len(m['headings'])} headings, at most {lines} lines each, page {m['height']} px high")
for problem in problems:
    print("  " + problem)
sys.exit(1 if problems else 0)
PY
  done
done

# The screenshot: the GPU run section alone, as tall as it is at 600 px.
height=$("$PYTHON" -c 'import html, json, re, sys; d = open(sys.argv[1]).read(); print(json.loads(html.unescape(re.search(r"<pre id=\"preview-measure\"[^>]*>(.*?)</pre>", d, re.S).group(1)))["height"])' "$OUT/gpu-run-600.dom.html")
chrome 600 "$height" --screenshot="$OUT/gpu-run.png" "file://$OUT/gpu-run.html" >/dev/null
echo "screenshot: $OUT/gpu-run.png (600 × $height px)"
for width in 600 1200; do
  height=$("$PYTHON" -c 'import html, json, re, sys; d = open(sys.argv[1]).read(); print(json.loads(html.unescape(re.search(r"<pre id=\"preview-measure\"[^>]*>(.*?)</pre>", d, re.S).group(1)))["height"])' "$OUT/dist-$width.dom.html")
  chrome "$width" "$height" --screenshot="$OUT/dist-$width.png" "file://$OUT/dist.html" >/dev/null
  echo "screenshot: $OUT/dist-$width.png ($width × $height px)"
done
exit $status
