"""Names from a results folder reach the board's pages as text, never as markdown or HTML.

A candidate named ``![x](http://beacon.example/p.png)`` rendered through Streamlit markdown makes
the reader's browser fetch an image the folder chose (a tracking beacon); ``[link](...)``, a bare
URL (GitHub-flavoured markdown links it) and ``<img ...>`` are the same attack. A copy of the shared
real results folder gets such candidate, subject and file names, and every page is driven with
them (Streamlit's ``AppTest``). Each text element's markdown is then rendered the way a browser
would get it (CommonMark, raw HTML allowed), and nothing the names brought may become an image, a
link or an HTML element.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

RENAMES = {
    "moe-oracle": "![x](http://beacon.example/p.png)",
    "moe-keywords": "<img src=http://beacon.example/q.png>",
    "tiny-bio": "[link](http://beacon.example/l)",
}
SUBJECT = "Anatomy ![s](http://beacon.example/s.png) http://beacon.example/auto"
ODD_FOLDER = "![f](beacon.example)"  # a folder name that shows up in a reading problem
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
#: what the names may not become: an image, a link or script, an HTML element, a bare URL GFM links
PRODUCED = re.compile(r"<img|<a\s|<script|<b>|href=|src=", re.IGNORECASE)
BARE_URL = re.compile(r"(?<!\\)(https?://beacon|www\.beacon)")


def _hostile_copy(source: Path, out: Path) -> Path:
    root = Path(shutil.copytree(source, out))
    for path in root.rglob("*.json"):
        text = path.read_text(encoding="utf-8")
        for old, new in RENAMES.items():
            text = text.replace(json.dumps(old), json.dumps(new))
        path.write_text(text, encoding="utf-8")
    for path in root.rglob("samples_*.jsonl"):  # every document gets a hostile subject: the Compare page breaks them down
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
        for line in lines:
            line["doc"] = {**(line.get("doc") if isinstance(line.get("doc"), dict) else {}), "subject_name": SUBJECT}
        path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    (root / ODD_FOLDER).mkdir()
    (root / ODD_FOLDER / "results_2026-01-01T00-00-00.000000.json").write_text("{not json")
    return root


def _texts(at) -> list[tuple[str, str]]:
    """(element kind, markdown source) of every element whose text Streamlit renders as markdown."""
    out = []
    for kind in ("markdown", "caption", "title", "header", "subheader", "info", "warning", "error", "success"):
        out += [(kind, str(e.value)) for e in getattr(at, kind)]
    for kind in ("expander", "tabs", "metric", "selectbox", "multiselect", "toggle", "button"):
        out += [(kind, str(e.label)) for e in getattr(at, kind)]
    return out


@pytest.fixture
def beacon_board(board_results, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from medmoe_lm_eval.paths import leaderboard_dir

    monkeypatch.setenv("MEDMOE_RESULTS", str(_hostile_copy(board_results.root, tmp_path / "results")))
    monkeypatch.delenv("MEDMOE_USE_CASES", raising=False)
    at = AppTest.from_file(str(leaderboard_dir() / "app.py"), default_timeout=120).run()
    pages = sorted(p.name for p in (leaderboard_dir() / "pages").glob("*.py") if p.name != "__init__.py")
    return at, pages


def test_names_from_a_results_folder_never_become_markdown_or_html(beacon_board):
    at, pages = beacon_board
    seen_names = set()
    for page in pages:
        at.switch_page(f"pages/{page}").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        for kind, source in _texts(at):
            html = MARKDOWN.render(source)
            assert not PRODUCED.search(html), (page, kind, source, html)
            assert not BARE_URL.search(source), (page, kind, source)
            seen_names |= {name for name in (RENAMES["moe-oracle"], SUBJECT) if name in html}
        if page == "compare.py":  # the heading that carried a beacon: the first candidate's name, as text
            (heading,) = [e.value for e in at.subheader if "fails: per subject" in e.value]
            assert MARKDOWN.renderInline(heading) == "Where ![x](http://beacon.example/p.png) fails: per subject"
    assert {RENAMES["moe-oracle"], SUBJECT} <= seen_names  # the names did reach markdown elements, as text
