"""In a real browser (headless Chromium through Playwright): the demo page classifies an uploaded
photograph and draws its CAM, refuses a file that is not an image with one message, and a report
shows every image with no console error. Screenshots land in each test's tmp folder.

Skipped where Playwright or Chromium is missing, except in CI (``CI`` set), where .ci/run installs both
and a missing browser fails.
"""
from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser


def missing(reason: str):
    """Skip on a developer's machine; fail in CI, where .ci/run installs the browser."""
    (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)


try:
    import playwright.sync_api as playwright
except ImportError:
    playwright = None


def chromium_path() -> str | None:
    """Debian's chromium (or $CNNLAB_CHROMIUM): Playwright's own browser download needs a network."""
    return os.environ.get("CNNLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if playwright is None:
        missing("playwright is not installed (pip install -e '.[dev]')")
    if path is None:
        missing("no chromium on PATH (apt-get install chromium, or set CNNLAB_CHROMIUM)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    pg = browser.new_page(viewport={"width": 1200, "height": 900})
    pg.errors = []  # console errors and uncaught exceptions
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    pg.close()


def images_loaded(pg) -> list[list]:
    """[alt, complete, naturalWidth] of every <img> that has a source."""
    return pg.evaluate("[...document.images].filter(i => i.src).map(i => [i.alt, i.complete, i.naturalWidth])")


@pytest.fixture()
def demo_url():
    """`cnnlab demo` (the offline ImageNet EfficientNet-Lite0) on a free port of 127.0.0.1."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                         os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab.cli.main", "demo", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        line = lines.get(timeout=180)
        assert "http://127.0.0.1:" in line, line
        yield line.split("on ", 1)[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_demo_classifies_an_uploaded_photo_and_draws_its_cam(page, demo_url, tmp_path):
    import skimage.data
    from PIL import Image

    photo = tmp_path / "chelsea.png"  # scikit-image's photograph of a cat
    Image.fromarray(skimage.data.chelsea()).save(photo)
    page.goto(demo_url)
    page.wait_for_selector("body[data-state=ready]", timeout=30_000)
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("body[data-state=done], body[data-state=error]", timeout=120_000)
    page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
    assert page.text_content("#error") == ""
    label = page.text_content("#label")
    assert label.split(" (")[0] in ("Egyptian cat", "tabby", "tiger cat"), label
    shown = {alt: (done, width) for alt, done, width in images_loaded(page)}
    for alt in ("input image", "class activation map over the image", "adversarial image", "perturbation"):
        assert shown[alt][0] and shown[alt][1] == 224, (alt, shown.get(alt))
    page.select_option("#method", "gradcam++")
    page.wait_for_selector("body[data-state=done]", timeout=120_000)
    assert page.text_content("#cam-caption").startswith("gradcam++ on layer")
    page.fill("#eps", "0.05")
    page.dispatch_event("#eps", "change")
    page.wait_for_selector("body[data-state=done]", timeout=120_000)
    assert page.text_content("#adv-caption").startswith("epsilon 0.050")
    assert page.errors == []
    page.screenshot(path=str(tmp_path / "demo-gradcampp-eps0.05.png"), full_page=True)

    notes = tmp_path / "notes.txt"
    notes.write_text("these are my notes, not a picture")
    page.set_input_files("#file", str(notes))
    page.wait_for_selector("body[data-state=error]", timeout=60_000)
    assert "the upload is not an image" in page.text_content("#error")
    assert page.is_hidden("#results")
    page.screenshot(path=str(tmp_path / "demo-not-an-image.png"))


def test_reports_show_every_image_without_console_errors(page, digits_run, tmp_path):
    from cnnlab.report.html import write_report

    for name, folders in (("single", [digits_run]), ("comparison", [digits_run, digits_run])):
        report = write_report(folders, tmp_path / f"{name}.html")
        page.goto(report.resolve().as_uri())
        page.wait_for_load_state("load")
        shown = images_loaded(page)
        assert len(shown) >= 4 and all(done and width > 100 for _, done, width in shown), shown
        page.screenshot(path=str(tmp_path / f"report-{name}.png"), full_page=True)
    assert page.errors == []


def test_demo_example_buttons_drop_and_pixelated_input(page, demo_url, tmp_path):
    """An example photo analyses with one click; a dropped file is analysed like a chosen one."""
    page.goto(demo_url)
    page.wait_for_selector("body[data-state=ready]", timeout=30_000)
    assert page.eval_on_selector_all("#examples button", "bs => bs.map(b => b.textContent)") == \
        ["chelsea", "coffee", "astronaut", "rocket"]
    page.click("#examples button[data-example=chelsea]")
    page.wait_for_selector("body[data-state=done], body[data-state=error]", timeout=120_000)
    assert page.text_content("#error") == "" and page.text_content("#label").split(" (")[0] in \
        ("Egyptian cat", "tabby", "tiger cat")
    assert page.eval_on_selector("#input", "i => getComputedStyle(i).imageRendering") == "pixelated"
    # a drop event carrying a PNG (what a file dragged from the desktop delivers)
    page.evaluate("""async () => {
        const blob = await (await fetch(document.querySelector('#examples button[data-example=coffee]') &&
                                       JSON.parse(await (await fetch('/api/info')).text()).examples[1].image)).blob();
        const dt = new DataTransfer(); dt.items.add(new File([blob], 'coffee.png', {type: 'image/png'}));
        document.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""")
    page.wait_for_selector("body[data-state=busy]", timeout=30_000)
    page.wait_for_selector("body[data-state=done], body[data-state=error]", timeout=120_000)
    assert page.text_content("#error") == "" and page.errors == []


def test_demo_shows_the_newest_answer_when_an_older_one_comes_back_later(page, demo_url):
    """The server is threaded, so answers can arrive out of order (a slow FGSM after the next upload's
    error, as CI once saw): the page shows only the newest request's answer, whatever comes back later."""
    page.goto(demo_url)
    page.wait_for_selector("body[data-state=ready]", timeout=30_000)
    page.click("#examples button[data-example=chelsea]")
    page.wait_for_selector("body[data-state=done]", timeout=120_000)
    held = []
    page.route("**/api/fgsm?*", lambda route: held.append(route) if not held else route.continue_())

    def set_eps(value: str) -> None:  # exactly one change event, as a released slider gives
        page.eval_on_selector("#eps", "(el, v) => { el.value = v; el.dispatchEvent(new Event('change')); }", value)

    set_eps("0.03")                   # its answer is held back
    page.wait_for_function("() => document.body.dataset.state === 'busy'")
    set_eps("0.05")
    page.wait_for_selector("body[data-state=done]", timeout=120_000)
    assert page.text_content("#adv-caption").startswith("epsilon 0.050")
    assert len(held) == 1 and "eps=0.03" in held[0].request.url
    with page.expect_response(lambda r: "eps=0.03" in r.url, timeout=120_000):
        held[0].continue_()
    page.wait_for_timeout(200)        # let the page handle the late answer
    assert page.text_content("#adv-caption").startswith("epsilon 0.050")
    assert page.evaluate("document.body.dataset.state") == "done"

    held.clear()                      # a late FGSM answer must not hide the next upload's error either
    set_eps("0.02")
    page.wait_for_function("() => document.body.dataset.state === 'busy'")
    page.set_input_files("#file", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a picture"})
    page.wait_for_selector("body[data-state=error]", timeout=60_000)
    with page.expect_response(lambda r: "eps=0.02" in r.url, timeout=120_000):
        held[0].continue_()
    page.wait_for_timeout(200)
    assert page.evaluate("document.body.dataset.state") == "error"
    assert "the upload is not an image" in page.text_content("#error")
    assert [e for e in page.errors if "status of 400" not in e] == []  # the refused upload's 400 alone
