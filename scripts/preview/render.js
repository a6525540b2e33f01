// Markdown -> the HTML VS Code's Markdown preview would show, plus a measurement the check reads back.
//
//   node render.js NOTEBOOK.md OUT.html
//
// VS Code renders its preview with markdown-it (HTML allowed, links detected, soft breaks kept as spaces) and
// styles it with its own stylesheet. The style below restates the properties of that stylesheet that decide
// widths and wrapping (font sizes, body padding, word-wrap, table cells, scrolling code blocks, images), written
// here from VS Code's documented defaults; colours are left out. The script at the end measures the page after
// layout and writes the result as JSON into <pre id="preview-measure">, which `chromium --dump-dom` prints.
"use strict";
const fs = require("fs");
const path = require("path");
const MarkdownIt = require("markdown-it");

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: node render.js NOTEBOOK.md OUT.html");
  process.exit(2);
}
const md = new MarkdownIt({ html: true, linkify: true, breaks: false });
const body = md.render(fs.readFileSync(input, "utf8"));

// An emoji font (the headings' ✅ ⚠️ ❌), where npm installed one beside markdown-it: Linux machines without a
// desktop often have none, and the screenshot would show boxes.
let emoji = "";
try {
  emoji = `<link rel="stylesheet" href="file://${require.resolve("@fontsource/noto-emoji/index.css")}">`;
} catch (e) { /* none: the check itself does not need it */ }

const style = `
html, body { font-family: "DejaVu Sans", "Ubuntu", sans-serif, "Noto Emoji"; font-size: 14px; line-height: 22px;
             padding: 0 26px; word-wrap: break-word; margin: 0; }
body { padding-top: 1em; background: #fff; color: #1f1f1f; }
h1, h2, h3, h4, h5, h6, p, ol, ul, pre { margin-top: 0; }
h2, h3, h4, h5, h6 { font-weight: normal; margin-bottom: 0.2em; }
h1 { padding-bottom: 0.3em; line-height: 1.2; border-bottom: 1px solid rgba(0, 0, 0, 0.18); font-weight: normal; }
img { max-width: 100%; max-height: 100%; }
p { margin-bottom: 0.7em; }
ul { margin-bottom: 0; }
ol { margin-bottom: 0.7em; }
table { border-collapse: collapse; }
th { text-align: left; border-bottom: 1px solid rgba(0, 0, 0, 0.69); }
th, td { padding: 5px 10px; }
table > tbody > tr + tr > td { border-top: 1px solid rgba(0, 0, 0, 0.18); }
blockquote { margin: 0 7px 0 5px; padding: 0 16px 0 10px; border-left: 5px solid rgba(0, 0, 0, 0.18); }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 1em; line-height: 1.357em; }
pre { padding: 16px; border-radius: 3px; overflow: auto; background-color: rgba(220, 220, 220, 0.4); }
`;

const measure = `
window.addEventListener("load", () => {
  const root = document.scrollingElement;
  const lines = (el) => Math.round(el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight));
  const limit = document.body.getBoundingClientRect().right;
  const wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest("pre")) continue;  // a code block scrolls on its own, the page does not
    const r = el.getBoundingClientRect();
    if (r.right > limit + 0.5 && wide.length < 20) wide.push(el.tagName + ": " + el.textContent.slice(0, 80));
  }
  const result = {
    viewport: window.innerWidth, scrollWidth: root.scrollWidth, clientWidth: root.clientWidth,
    height: Math.ceil(root.scrollHeight), wide,
    headings: [...document.querySelectorAll("h2")].map((h) => ({ text: h.textContent, lines: lines(h) })),
  };
  const out = document.createElement("pre");
  out.id = "preview-measure";
  out.style.display = "none";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
`;

const html = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${path.basename(input)}</title>
${emoji}<style>${style}</style></head>
<body>
${body}
<script>${measure}</script>
</body></html>
`;
fs.writeFileSync(output, html);
