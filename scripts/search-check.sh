#!/usr/bin/env bash
# Searches the built book for a term as a reader does, in headless Chromium:
# opens the edition's first page with `?search=TERM` (mdBook's own link to a
# search), lets the page's scripts run, and reads the results list.
#
#   scripts/search-check.sh EDITION TERM      e.g.  scripts/search-check.sh ja 過学習
#
# Prints the searcher's own header line and the first results. Exit 0 when
# results are listed, 1 when none are, 2 when the check cannot run (no built
# edition: run `make report`; no Chromium: apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
  echo "usage: scripts/search-check.sh EDITION TERM   (EDITION: a folder of book/book/, e.g. en or ja)" >&2; exit 2
fi
edition=$1 term=$2
page=book/book/$edition/index.html
if [ ! -f "$page" ]; then
  echo "search-check: no built \`$edition\` edition ($page); run \`make report\` first" >&2; exit 2
fi
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [ -z "$browser" ]; then
  echo "search-check: no Chromium found (Debian: apt-get install chromium; or set CHROMIUM=/path/to/it)" >&2; exit 2
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
url="file://$PWD/$page?search=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$term")"
# The background-networking flags keep Chromium from calling out at start,
# which a closed network refuses; --virtual-time-budget lets the lazy search
# index load and the search run before the DOM is read.
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --virtual-time-budget=15000 --dump-dom "$url" > "$profile/dom.html" 2>/dev/null || {
  echo "search-check: Chromium failed on $url" >&2; exit 2; }
python3 - "$edition" "$term" "$profile/dom.html" <<'PY'
import sys
from html.parser import HTMLParser

class Results(HTMLParser):
    """The search header's text and the results list's entries."""
    def __init__(self):
        super().__init__()
        self.stack, self.header, self.results, self.in_list = [], "", [], 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id") == "mdbook-searchresults-header":
            self.stack.append("header")
        elif a.get("id") == "mdbook-searchresults":
            self.in_list = 1
        elif self.in_list and tag == "li":
            self.results.append("")
        elif self.in_list:
            self.in_list += tag not in ("br", "img")
    def handle_endtag(self, tag):
        if self.stack and tag == "div":
            self.stack.pop()
        if self.in_list and tag == "ul":
            self.in_list = 0
    def handle_data(self, data):
        if self.stack:
            self.header += data
        elif self.in_list and self.results and not self.results[-1]:
            self.results[-1] = data.strip()

edition, term, dom = sys.argv[1:4]
p = Results()
p.feed(open(dom, encoding="utf-8").read())
print(f"{edition} {term!r}: {p.header.strip() or '(no search header: the search did not run)'}")
for r in p.results[:5]:
    print(f"  - {r}")
sys.exit(0 if p.results else 1)
PY
