"""labrram watch in a real headless browser (Chromium, driven by selenium), following a
16,384-device write-verify that another process is running.

The default write-verify takes about a second, too short to watch it grow; the run is paced
instead: the programming process calls ``labrram.program`` (what ``labrram program --out``
calls) with a progress callback that waits, between write-verify iterations, until the test lets
it go on (a counter in a file), as a slower bench would. The test moves the run on a few
iterations at a time and waits for the page to show each new state, so a loaded machine slows
the test but cannot make it miss an update. The run, its store and its 16,384 devices are the
real ones; only the pace changes.

Needs chromium and chromedriver (``make browser`` installs them from the distribution's
packages) and the selenium package (the ``test`` extra); skipped without them.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("selenium", reason="selenium is not installed (pip install 'labrram[test]')")
Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (it comes with matplotlib: pip install 'labrram[plot]')")

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None, reason="chromium and chromedriver are not installed (make browser)")

GREEN, MAGENTA = (26, 152, 80), (197, 27, 125)  # within band / not converged (web/watch.js)
PACED = """
import pathlib, sys, time
import labrram
gate, calls = pathlib.Path(sys.argv[2]), [0]
def progress(label, done, total):
    calls[0] += 1
    while int(gate.read_text() or 0) < calls[0]:  # the test lets the run go on
        time.sleep(0.02)
labrram.program("uniform:40e-6:200e-6", out=sys.argv[1], progress=progress)
"""

PAGE_STATE = """
const w = window.labrramWatch, c = document.getElementById('map');
let sum = 0, painted = 0;
if (c.width > 1) {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 0; i < d.length; i += 4) {
    sum = (sum * 31 + d[i] * 7 + d[i + 1] * 3 + d[i + 2]) % 1000000007;
    if (!(d[i] === 200 && d[i + 1] === 200 && d[i + 2] === 200) && d[i + 3] === 255) painted++;
  }
}
return {draws: w.draws, status: w.state && w.state.status, final: w.state && w.state.final, pulses: w.state && w.state.pulses,
        rev: w.state && w.state.rev, drawnRev: c.dataset.rev, hash: sum, painted: painted, errors: w.errors,
        text: document.getElementById('stats').innerText};
"""


def _pixels(png: bytes, color: tuple[int, int, int]) -> int:
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return int(np.all(img == np.array(color, dtype=np.uint8), axis=-1).sum())


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,1400", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    yield driver
    driver.quit()


def test_the_page_follows_a_running_write_verify_and_shows_its_end(browser, tmp_path):
    import labrram
    from labrram.live import WatchError
    from labrram.store import RunStore
    from selenium.webdriver.common.by import By

    out = tmp_path / "run.zarr"
    gate = tmp_path / "gate"
    gate.write_text("0")
    proc = subprocess.Popen([sys.executable, "-c", PACED, str(out), str(gate)], env=dict(os.environ), stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        server = None
        while server is None:  # the run store appears when the run starts
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the run store never appeared"
            try:
                server = labrram.watch(out, interval=0.2)
            except WatchError:
                time.sleep(0.05)
        with server:
            browser.get(server.url)
            running: list[dict] = []
            shots: list[bytes] = []
            allowed = 0
            for _ in range(4):  # each time: the page shows a state it had not shown, then the run moves on
                seen = {r["hash"] for r in running}
                wait_until = time.monotonic() + 90
                while True:
                    s = browser.execute_script(PAGE_STATE)
                    if s["status"] == "running" and s["draws"] and s["hash"] not in seen:
                        break
                    assert proc.poll() is None, "the run ended while the test held it"
                    assert time.monotonic() < wait_until, f"the map did not change after the run moved on: {s}"
                    time.sleep(0.1)
                running.append(s)
                shots.append(browser.find_element(By.ID, "map").screenshot_as_png)
                allowed += 3
                gate.write_text(str(allowed))
            gate.write_text(str(10**9))  # the rest of the run at its own pace
            proc.wait(timeout=180)
            deadline = time.monotonic() + 60
            assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]

            # while it ran: the map was drawn, and drawn again as the run went on
            assert running, "the page showed no map while the run was going"
            assert len({s["hash"] for s in running}) >= 3, "the map did not update at least twice while the run was going"
            assert len({s["draws"] for s in running}) >= 3
            assert [s["pulses"] for s in running] == sorted(s["pulses"] for s in running)
            painted = [s["painted"] for s in running]  # devices read so far (0 before the first batch: all grey)
            assert painted == sorted(painted) and painted[-1] > 0
            assert max(s["errors"] for s in running) == 0

            # after it: the final state, from the stored result
            while True:
                s = browser.execute_script(PAGE_STATE)
                if s["status"] == "complete" and s["final"] and s["drawnRev"] == str(s["rev"]):
                    break
                assert time.monotonic() < deadline, f"the page never showed the finished run: {s}"
                time.sleep(0.25)
            converged = RunStore.open(out).read("converged").astype(bool)
            assert converged.size == 16384
            assert f"{int(converged.sum()):,} ({100 * converged.mean():.2f} %)" in s["text"]
            assert "16,384 on 128×128" in s["text"]
            final = browser.find_element(By.ID, "map").screenshot_as_png
            scale = int(browser.find_element(By.ID, "map").get_attribute("data-scale"))
            assert _pixels(final, GREEN) == int(converged.sum()) * scale**2
            assert _pixels(final, MAGENTA) == int((~converged).sum()) * scale**2
            assert all(_pixels(shot, GREEN) < _pixels(final, GREEN) for shot in shots)  # devices converged since
            browser.save_screenshot(str(tmp_path / "watch.png"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
