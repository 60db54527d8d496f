"""What a person sees, for real: the README's `make run` in a pseudo-terminal, then its
report.html in headless Chromium (Debian's package, installed by `make test` through
`make browser`).

FRUITLENS_SCREENSHOT=docs/report.png also writes the page's screenshot there (the README's).
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest

from support.browser import Browser, chromium_binary
from support.images import bad_inputs, write_tree
from support.paths import REPO, copy_slice

pytestmark = [pytest.mark.spark, pytest.mark.slow]

INJECTED_NAME = '<img src=x onerror="alert(1)">.jpg'
# What the parts print when nobody quiets them: log4j lines, Spark's banner and progress bar,
# TensorFlow's C++ and absl lines. (The JVM's own "WARNING: Using incubator modules", printed
# by Java itself before any logging exists, is not among them.)
CHATTER = re.compile(
    r"\b(WARN|INFO)\b|log4j|Setting default log level|To adjust logging level|\[Stage \d"
    r"|tensorflow|TensorFlow binary|oneDNN|^[IWE]\d{4} |WARNING:absl|absl::InitializeLog"
    r"|NativeCodeLoader"
)


@pytest.fixture(scope="module")
def terminal_run(fruits360: Path, tmp_path_factory: pytest.TempPathFactory):
    """`make run` as the README gives it (DATA= a folder, the seeded weights: no ImageNet here),
    typed in a terminal (pexpect gives it a pty)."""
    import pexpect

    root = copy_slice(fruits360, tmp_path_factory.mktemp("in"), {"Training": 8, "Test": 4}, 4)
    files = bad_inputs()
    files[f"Odd Cases/{INJECTED_NAME}"] = (b"<html>not a photo</html>\n" * 3, "not_an_image")
    write_tree(root, files)
    output = tmp_path_factory.mktemp("run") / "out"
    child = pexpect.spawn(
        "make",
        ["--no-print-directory", "run", f"DATA={root}", "WEIGHTS=seeded:0", f"OUT={output}"],
        cwd=str(REPO),
        env={**os.environ, "MAKEFLAGS": ""},
        encoding="utf-8",
        timeout=900,
        dimensions=(40, 200),
    )
    child.expect(pexpect.EOF)
    child.close()
    text = child.before.replace("\r\n", "\n")
    (output.parent / "terminal.txt").write_text(text)  # what the person saw, kept for a look
    return child.exitstatus, text, output


def test_the_terminal_shows_progress_and_the_summary_and_no_chatter(terminal_run):
    status, text, output = terminal_run
    assert status == 0, text[-3000:]
    # Redrawn in place: the progress line's states are separated by carriage returns.
    states = [part for line in text.split("\n") for part in line.split("\r")]
    chatter = [line for line in states if CHATTER.search(line)]
    assert chatter == [], "\n".join(chatter)
    finals = [s for s in states if re.match(r"featurize: \d+/\d+ images .*done in", s)]
    listed = json.loads((output / "run.json").read_text())["images"]["listed"]
    assert finals and finals[-1].startswith(f"featurize: {listed}/{listed} images (100%)")
    assert "stage featurize: done in" in text and "stage pca: done in" in text
    assert "fruitlens run finished" in text
    assert json.loads((output / "run.json").read_text())["classifier"]["trained"] is True
    assert re.search(r"classifier logreg: accuracy [0-9.]+", text)
    assert f"report     {output / 'report.html'}" in text


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium not installed: `make browser` installs Debian's package")
    opened = Browser(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def opened_report(terminal_run, browser):
    status, _, output = terminal_run
    assert status == 0
    browser.open((output / "report.html").as_uri())
    return browser, json.loads((output / "run.json").read_text())


def test_the_report_opens_without_a_console_error(opened_report):
    browser, _ = opened_report
    assert browser.errors() == []


def test_the_summary_figures_are_run_json_s(opened_report):
    browser, document = opened_report
    shown = browser.evaluate(
        "Array.from(document.querySelectorAll('.figure[data-value]'))"
        ".map(e => [e.dataset.key, e.dataset.value])"
    )
    assert len(shown) >= 8
    for key, value in shown:
        expected = document
        for part in key.split("."):
            expected = expected[part]
        assert float(value) == pytest.approx(float(expected)), key


def test_one_row_per_class_sortable_by_a_click(opened_report):
    browser, document = opened_report
    evaluation = json.loads((Path(document["output"]) / "evaluation.json").read_text())
    names = browser.evaluate(
        "Array.from(document.querySelectorAll('#per-class tbody tr'))"
        ".map(r => r.cells[0].textContent)"
    )
    assert sorted(names) == sorted(evaluation["classes"])
    recall = browser.evaluate(
        "document.querySelector('#per-class thead th:nth-child(3)').click();"
        "Array.from(document.querySelectorAll('#per-class tbody tr'))"
        ".map(r => parseFloat(r.cells[2].dataset.value))"
    )
    assert recall == sorted(recall, reverse=True)


def test_a_file_name_with_markup_is_shown_as_text(opened_report):
    browser, _ = opened_report
    cells = browser.evaluate(
        "Array.from(document.querySelectorAll('#rejected-files td.path')).map(c => c.textContent)"
    )
    assert any(cell.endswith(INJECTED_NAME) for cell in cells)
    assert browser.evaluate("document.querySelectorAll('img[src=x]').length") == 0


def test_images_decode_and_the_screenshot_is_not_blank(opened_report):
    from PIL import Image

    browser, _ = opened_report
    images = browser.evaluate(
        "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"
    )
    assert images and all(images)
    assert browser.evaluate("document.querySelectorAll('svg').length") >= 2
    shot = browser.screenshot()
    picture = Image.open(io.BytesIO(shot)).convert("RGB")
    assert picture.height > 1500  # the whole page, not the first screen
    colours = picture.getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 50  # text, plots and tables, not an empty page
    target = os.environ.get("FRUITLENS_SCREENSHOT")
    if target:
        picture.save(target, optimize=True)
