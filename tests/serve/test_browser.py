"""The web page in a real headless Chromium whose fake camera and microphone play files made here.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package (dev extra).
"""

from __future__ import annotations

import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver are not installed (apt-get install -y chromium chromium-driver)")


def write_y4m(path: Path, frames_rgb: np.ndarray, fps: int) -> Path:
    """Frames as a YUV4MPEG2 file (4:2:0), the format Chromium's fake camera plays."""
    import cv2

    n, height, width, _ = frames_rgb.shape
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames_rgb:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def write_wav(path: Path, audio: np.ndarray, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture
def browser(tmp_path, stream_media):
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    frames, _, audio = stream_media
    video = write_y4m(tmp_path / "clip.y4m", frames, 10)
    speech = write_wav(tmp_path / "speech.wav", audio)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                 f"--use-file-for-fake-video-capture={video}", f"--use-file-for-fake-audio-capture={speech}",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_the_page_streams_the_camera_and_shows_results(start_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = start_server(faces_fps=4.0)
    browser.get(server.url + "/?tasks=emotion,sentiment&window=1&fps=5&autostart=1")
    WebDriverWait(browser, 60).until(lambda d: int(d.find_element(By.TAG_NAME, "body").get_attribute("data-clips")
                                                 or 0) >= 1)
    rows = {row.get_attribute("data-task"): row.text
            for row in browser.find_elements(By.CSS_SELECTOR, "#answers tr[data-task]")}
    assert set(rows) == {"emotion", "sentiment"} and all(rows.values())
    clips = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#clips li")]
    assert re.match(r"^\d+\.\d-\d+\.\d s: ", clips[0]) and "emotion=" in clips[0] and "sentiment=" in clips[0]
    body = browser.find_element(By.TAG_NAME, "body")
    assert int(body.get_attribute("data-faces") or 0) >= 1, "faces messages reached the page"
    # a video-only clip can be answered before the audio worklet's first chunk is sent (a loaded machine)
    WebDriverWait(browser, 30).until(lambda d: int(d.find_element(By.TAG_NAME, "body").get_attribute("data-audio")
                                                   or 0) > 0, "the microphone was never streamed")
    chart_ink = browser.execute_script(
        "const c = document.getElementById('chart');"
        "return c.getContext('2d').getImageData(0, 0, c.width, 20).data.some((v, i) => i % 4 === 3 && v > 0);")
    assert chart_ink, "emotion dots on the chart"
    browser.find_element(By.ID, "stop").click()
    WebDriverWait(browser, 60).until(lambda d: "closed" in d.find_element(By.ID, "status").text)
    errors = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#log li.error")]
    assert errors == []
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
