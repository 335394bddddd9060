"""The leaderboard in a real browser: ``medmoe leaderboard`` on 127.0.0.1, Debian's Chromium via Playwright.

The server is the command a user runs (``python -m medmoe_lm_eval leaderboard --results ...``),
reading the folder of real tiny-model runs. The test checks that the overview table and a chart
render, that a sidebar filter changes the table, that a candidate name carrying HTML shows as text
(no element injected, no script run), that the Consult page answers a question with a real tiny
mixture (gate chart, multi-domain split, answer, disclaimer), saves screenshots of the trade-offs
and the Consult pages, and stops the server by its pid. A second test renders every page at
1400 x 900 and 1024 x 768 and checks what a reader sees first (see ``test_every_page_reads_at_a_glance``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from medmoe_lm_eval.analysis.views import overview_table
from medmoe_lm_eval.store.results import load_results

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's Chromium: apt-get install -y chromium"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(proc: subprocess.Popen, port: int, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"leaderboard exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
                if resp.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"leaderboard not healthy after {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the pid we started (it forwards to Streamlit); SIGKILL its own group if stuck."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def server(board_results, tmp_path):
    port = _free_port()
    log = tmp_path / "server.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("MEDMOE_USE_CASES", None)
    command = [sys.executable, "-m", "medmoe_lm_eval", "leaderboard", "--results", str(board_results.root), "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(proc, port, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
    assert proc.returncode is not None and not _port_open(port), "the server kept running"


def _row_count(page) -> int:
    """Data rows of the overview's results table (the grid with a 'metric' header)."""
    grid = page.locator('[role="grid"]').filter(has_text="metric").last
    return int(grid.get_attribute("aria-rowcount")) - 1


def _wait_rows(page, expected: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _row_count(page) == expected:
                return
        except (TypeError, ValueError):
            pass
        page.wait_for_timeout(250)
    raise AssertionError(f"results table has {_row_count(page)} rows, expected {expected}")


def test_leaderboard_in_chromium(server, board_results, tmp_path):
    from playwright.sync_api import sync_playwright

    n_rows = len(overview_table(load_results(board_results.root).frame))
    shot = tmp_path / "leaderboard.png"
    consult_shot = tmp_path / "leaderboard-consult.png"
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(server)
            page.get_by_role("heading", name="Overview").wait_for(timeout=60_000)
            page.get_by_text("problem(s) while reading").wait_for(timeout=10_000)
            _wait_rows(page, n_rows)

            page.get_by_role("link", name="Compare").click()
            page.get_by_role("heading", name="Compare candidates").wait_for(timeout=30_000)
            page.locator('[data-testid="stSelectbox"]').filter(has_text="Candidate A").click()
            page.get_by_role("option", name="<script>", exact=False).click()
            header = page.get_by_text("<script>alert(1)</script>", exact=False).first
            header.wait_for(timeout=30_000)
            assert "<b>Médecin</b>" in header.inner_text()  # the tags are text, not markup
            assert page.locator("[data-testid='stMarkdownContainer'] b", has_text="Médecin").count() == 0

            page.get_by_role("link", name="Overview").click()
            page.get_by_role("heading", name="Overview").wait_for(timeout=30_000)
            _wait_rows(page, n_rows)
            kind = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Kind")
            kind.locator("input").click()
            page.get_by_role("option", name="MoE", exact=True).click()
            page.keyboard.press("Escape")
            _wait_rows(page, 2 * 3 * 2)
            rows = page.locator('[role="grid"]').filter(has_text="metric").last.locator('[role="row"]')
            first = rows.nth(1).inner_text()
            assert first.startswith("moe-"), first

            page.get_by_role("link", name="Trade-offs").click()
            chart = page.locator('[data-testid="stVegaLiteChart"]').first
            chart.locator("canvas, svg").first.wait_for(timeout=60_000)
            box = chart.bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 200
            page.wait_for_timeout(500)
            page.screenshot(path=str(shot), full_page=True)

            page.get_by_role("link", name="Consult").click()
            page.get_by_role("heading", name="Consult a candidate").wait_for(timeout=30_000)
            page.get_by_text("not medical advice").first.wait_for(timeout=10_000)
            page.locator('[data-testid="stSelectbox"]').filter(has_text="Candidate").click()
            page.get_by_role("option", name="moe-keywords", exact=True).click()
            page.get_by_role("button", name="Drug interaction + liability").click()
            question = page.locator('[data-testid="stTextArea"] textarea')
            page.wait_for_function("el => el.value.includes('warfarin')", arg=question.element_handle(), timeout=30_000)
            page.get_by_role("button", name="Ask", exact=True).click()
            page.get_by_role("heading", name="Answer from bio").wait_for(timeout=180_000)  # first question: loads the expert
            page.get_by_text("Multi-domain question").wait_for(timeout=30_000)
            page.get_by_text("Loaded in this app process").wait_for(timeout=180_000)  # the answer is complete
            gate = page.locator('[data-testid="stVegaLiteChart"]').first
            gate.locator("canvas, svg").first.wait_for(timeout=60_000)
            assert page.get_by_text("badge", exact=False).count() == 0  # role badges rendered, not shown as markup
            page.set_viewport_size({"width": 1400, "height": 1800})  # Streamlit scrolls inside the page: show it all
            page.wait_for_timeout(800)
            page.screenshot(path=str(consult_shot), full_page=True)
        finally:
            browser.close()
    assert dialogs == [], "a script ran in the page"
    assert shot.stat().st_size > 20_000 and consult_shot.stat().st_size > 20_000
    keep = os.environ.get("MEDMOE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for picture in (shot, consult_shot):
            shutil.copy(picture, Path(keep) / picture.name)


#: every page (URL path, heading) in the order of the sidebar
PAGES = [
    ("", "Overview"), ("use_cases", "Use cases"), ("tradeoffs", "Trade-offs"), ("routing", "Routing"),
    ("compare", "Compare candidates"), ("fidelity", "Fidelity of quantized copies"), ("consult", "Consult a candidate"),
]  # fmt: skip
EMPTY_CELLS = {"", "n/a", "—", "-", "none", "nan"}


def _grid_rows(grid) -> list[list[str]]:
    """The cells of a Streamlit dataframe, read from its accessible grid (the canvas draws the same text)."""
    rows = grid.locator('[role="row"]')
    return [[c.inner_text().strip() for c in rows.nth(i).locator('[role="gridcell"], [role="columnheader"]').all()] for i in range(rows.count())]


def _settle(page) -> None:
    """Wait until Streamlit stops running the script (its status widget leaves) and charts drew."""
    page.wait_for_timeout(600)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=60_000)
    page.wait_for_timeout(600)


def _overflow(frame) -> int:
    """Pixels a dataframe scrolls sideways (0 when every column is in view)."""
    return int(frame.locator(".dvn-scroller").first.evaluate("el => el.scrollWidth - el.clientWidth"))


#: a header only the Overview's Results table has: the full data browser (every task x metric x
#: efficiency column, with its CSV download) is the one table meant to scroll sideways
DATA_BROWSER_HEADER = "± stderr"


def _check_no_sideways_scroll(page, heading: str, width: int) -> None:
    """Every table in view (not folded in a closed expander), the data browser aside, shows all its
    columns without a horizontal scrollbar; a table is named by its first headers in the message."""
    for frame in page.locator('[data-testid="stDataFrame"]').all():
        if not frame.is_visible():
            continue
        frame.locator('[role="columnheader"]').first.wait_for(state="attached", timeout=10_000)  # the grid's accessible copy comes after its canvas
        headers = [h.inner_text().strip() for h in frame.locator('[role="columnheader"]').all()]
        overflow = _overflow(frame)
        if overflow > 1 and DATA_BROWSER_HEADER not in headers:
            raise AssertionError(f"{heading} at {width} px: the table with columns {headers[:4]} scrolls sideways by {overflow} px")


def _check_use_cases(page, width: int) -> None:
    """The ranking in view: no sideways scroll, every name fits its column (whole, or wrapped within
    the rows' three lines), and 'N of M candidate(s) ranked' counts the rows the table shows."""
    from board_ui import CELL_PAD_PX, RANKING_NAME_CAP, name_width  # the sizing rule the page uses, measured in this browser's font

    heading = page.get_by_text("candidate(s) ranked").first
    heading.wait_for(timeout=30_000)
    ranked, total = (int(x) for x in heading.inner_text().split(" candidate")[0].split(" of "))
    frame = page.locator('[data-testid="stDataFrame"]').filter(has=page.locator('[role="columnheader"]', has_text="why")).first
    overflow = _overflow(frame)
    assert overflow <= 1, f"at {width} px the ranking scrolls sideways by {overflow} px"
    rows = _grid_rows(frame)
    header, body = rows[0], rows[1:]
    assert len(body) == total, f"the page says {total} candidates, the table shows {len(body)}"
    assert sum(r[header.index("rank")] != "—" for r in body) == ranked
    names = [r[header.index("candidate")] for r in body]
    column = name_width(names, cap=RANKING_NAME_CAP) - CELL_PAD_PX  # its narrowest: the width it starts from at 1024 px
    widths = page.evaluate(
        "names => { const c = document.createElement('canvas').getContext('2d');"
        " c.font = '14px ' + getComputedStyle(document.body).fontFamily; return names.map(n => c.measureText(n).width); }",
        names,
    )
    for name, width_px in zip(names, widths, strict=True):
        assert width_px <= 3 * column, f"{name!r} ({width_px:.0f} px) does not fit three lines of {column} px"


#: the two screens a reader brings: a laptop at 1400 x 900 and a narrow one at 1024 x 768
WIDE, NARROW = (1400, 900), (1024, 768)


def _screenshots(page, shots: Path, name: str, size: tuple[int, int]) -> None:
    """The first screen and the whole page at ``size`` (Streamlit scrolls inside the page: a tall
    viewport shows it all), then back to ``size``."""
    width, height = size
    page.screenshot(path=str(shots / f"{name}-{width}.png"))
    page.set_viewport_size({"width": width, "height": 3000})
    page.wait_for_timeout(600)
    page.screenshot(path=str(shots / f"{name}-{width}-whole.png"))
    page.set_viewport_size({"width": width, "height": height})


def test_every_page_reads_at_a_glance(server, board_results, tmp_path):
    """Every page on the shared results folder, each loaded once and looked at on two screens.

    At 1400 x 900: no table in view scrolls sideways (the ranking tables of every page, Compare and
    Fidelity included; the Overview's Results data browser aside), no page's tables hold only n/a, and on Use cases the checks of
    :func:`_check_use_cases`. The same page resized to 1024 x 768 (no reload, no rerun): the Use
    cases ranking still has no horizontal scrollbar and its names stay whole. A screenshot of the
    first screen and one of the whole page at both widths (under the test's folder, copied to
    ``MEDMOE_SCREENSHOTS`` when set)."""
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"])
        try:
            page = browser.new_page(viewport={"width": WIDE[0], "height": WIDE[1]})
            for i, (path, heading) in enumerate(PAGES):
                name = f"{i}-{path or 'overview'}"
                page.set_viewport_size({"width": WIDE[0], "height": WIDE[1]})
                page.goto(f"{server}/{path}")
                page.get_by_role("heading", name=heading).wait_for(timeout=60_000)
                _settle(page)
                if path == "use_cases":
                    _check_use_cases(page, WIDE[0])
                _check_no_sideways_scroll(page, heading, WIDE[0])
                for grid in page.locator('[data-testid="stDataFrame"]').filter(has=page.locator('[role="grid"]')).all():
                    cells = [c for row in _grid_rows(grid)[1:] for c in row[1:]]
                    assert not cells or any(c.lower() not in EMPTY_CELLS for c in cells), f"{heading}: a table of n/a only"
                _screenshots(page, shots, name, WIDE)
                page.set_viewport_size({"width": NARROW[0], "height": NARROW[1]})
                page.wait_for_timeout(600)
                if path == "use_cases":
                    _check_use_cases(page, NARROW[0])
                _screenshots(page, shots, name, NARROW)
        finally:
            browser.close()
    assert all(p.stat().st_size > 20_000 for p in shots.iterdir()) and len(list(shots.iterdir())) == 4 * len(PAGES)
    keep = os.environ.get("MEDMOE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for picture in shots.iterdir():
            shutil.copy(picture, Path(keep) / picture.name)
