"""The gateway's web page (``GET /``, ``service/static/``) driven in a real headless Chromium.

The real gateway (uvicorn) in front of the shared real Triton; the page is used as a person would:
pick a photo in the file input, choose the model and each output format the gateway lists
(``GET /formats``), press Upscale, wait, drag the before/after divider, download (named by the
answer's type), read the error when the file is no image. Needs Debian's ``chromium`` and
``chromium-driver`` (``make test`` installs them where it can); without them the browser tests
skip visibly. ``IMDSR_UPDATE_SCREENSHOT=1`` writes the screenshot to ``docs/web_page.png``.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from service.settings import Settings
from tests.support.gateway import Gateway

pytestmark = pytest.mark.triton

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "service" / "static"
SCREENSHOT = ROOT / "docs" / "web_page.png"
MODEL = "c4"
TIMEOUT_S = 120


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(triton_server) -> Iterator[Gateway]:  # noqa: ANN001
    with Gateway(Settings(triton_url=triton_server.grpc_url, default_model=MODEL)) as gw:
        yield gw


def _browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        return (f"needs chromium and chromium-driver: {' and '.join(missing)} not on PATH "
                "(apt-get install chromium chromium-driver; make test does it as root)")
    if importlib.util.find_spec("selenium") is None:
        return "needs selenium (the dev extra: pip install -e '.[dev]')"
    return None


# a skip mark, not a skip inside a fixture: it acts before the shared Triton is started
BROWSER_MISSING = _browser_missing()
needs_browser = pytest.mark.skipif(BROWSER_MISSING is not None, reason=BROWSER_MISSING or "")


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201 - selenium.webdriver.Chrome
    if BROWSER_MISSING:
        pytest.skip(BROWSER_MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,800", "--force-device-scale-factor=1", "--lang=en-US",
                "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")),
                              options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real photos: scikit-image's astronaut at 64x48 and, for the screenshot, a 160x120 crop."""
    from skimage import data

    root = tmp_path_factory.mktemp("web_page")
    astronaut = Image.fromarray(data.astronaut())
    small = root / "astronaut.png"
    astronaut.resize((64, 48), Image.LANCZOS).save(small)
    face = root / "astronaut_face.png"
    astronaut.crop((96, 0, 416, 240)).resize((160, 120), Image.LANCZOS).save(face)
    junk = root / "notes.png"  # named like an image, so the browser sends it as image/png
    junk.write_bytes(b"this is a shopping list, not a picture\n" * 20)
    return {"small": small, "face": face, "junk": junk}


# --- helpers ------------------------------------------------------------------------------------


def _wait(driver, condition, timeout: float = TIMEOUT_S, what: str = ""):  # noqa: ANN001, ANN202
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, what)


def _state(driver) -> str:  # noqa: ANN001
    return driver.execute_script("return document.getElementById('form').dataset.state")


def _open(driver, gw: Gateway) -> None:  # noqa: ANN001
    # Reading the console log empties it: a test then sees only its own messages, not the 415
    # or 401 that an earlier test in the same browser provoked on purpose.
    driver.get_log("browser")
    driver.get(gw.url + "/")
    for select in ("model", "format"):
        _wait(driver, lambda d, s=select: d.execute_script(
            f"return document.getElementById('{s}').dataset.loaded") in ("true", "failed"),
            30, f"the {select} list never loaded")
    # every data-state the page goes through from now on, in order
    driver.execute_script("""
        window.seenStates = [];
        const form = document.getElementById('form');
        new MutationObserver(() => window.seenStates.push(form.dataset.state))
            .observe(form, {attributes: true, attributeFilter: ['data-state']});
    """)


def _fill(driver, **fields: str) -> None:  # noqa: ANN001
    """Set the form's fields as a person would: select options, typed numbers."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for name, value in fields.items():
        element = driver.find_element(By.ID, name)
        if element.tag_name == "select":
            Select(element).select_by_value(value)
        else:
            element.clear()
            if value:
                element.send_keys(value)


def _upscale(driver, photo: Path) -> str:  # noqa: ANN001
    """Pick ``photo`` in the file input, press Upscale, wait for the outcome: "done" or "error"."""
    from selenium.webdriver.common.by import By

    file_input = driver.find_element(By.ID, "file")
    driver.execute_script("arguments[0].value = ''", file_input)  # the same file again is a change
    file_input.send_keys(str(photo))
    _wait(driver, lambda d: _state(d) == "ready", 10, "picking the file did not arm the form")
    driver.find_element(By.ID, "submit").click()
    _wait(driver, lambda d: _state(d) in ("done", "error"), TIMEOUT_S, "no result and no error")
    return _state(driver)


def _js(driver, script: str, *args: object):  # noqa: ANN001, ANN202
    return driver.execute_script(script, *args)


def _download(driver, folder: Path) -> Path:  # noqa: ANN001
    """Click the download link as a person would; the file Chromium saves into ``folder``."""
    from selenium.webdriver.common.by import By

    folder.mkdir(parents=True, exist_ok=True)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(folder)})
    driver.find_element(By.ID, "download").click()
    _wait(driver, lambda _: [p for p in folder.iterdir() if not p.name.endswith(".crdownload")],
          30, "the download link saved nothing")
    (saved,) = folder.iterdir()
    return saved


def _last_upscale_query(driver) -> dict[str, str]:  # noqa: ANN001
    """The query string of the page's last POST /upscale, from the browser's resource timings."""
    urls = _js(driver, "return performance.getEntriesByType('resource').map((e) => e.name)")
    posted = [u for u in urls if urlsplit(u).path == "/upscale"]
    assert posted, f"the page made no /upscale request: {urls}"
    return dict(parse_qsl(urlsplit(posted[-1]).query))


def _severe_console_messages(driver) -> list[str]:  # noqa: ANN001
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _png_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


# --- served by the gateway, outside the API schema ----------------------------------------------


def test_page_and_assets_are_served_without_other_sites(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        page = http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.text == (STATIC / "index.html").read_text()
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp  # the browser refuses anything from another site
        for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
            assert f'"/static/{asset}"' in page.text
            served = http.get(f"/static/{asset}")
            assert served.status_code == 200, asset
            assert kind in served.headers["content-type"], asset
            assert served.text == (STATIC / asset).read_text()
        missing = http.get("/static/nothing.js")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"

        paths = http.get("/openapi.json").json()["paths"]
        assert "/upscale" in paths and "/models" in paths
        assert not [p for p in paths if p == "/" or p.startswith("/static")], paths

    # no address of another site anywhere in the page (fonts, scripts, styles, images)
    for name in ("index.html", "style.css", "app.js"):
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://", text), f"{name} names another site"
        assert not re.search(r"""(?:src|href)=["']//|url\(\s*["']?//""", text), name
        assert "@import" not in text and "@font-face" not in text, name


# --- in the browser ------------------------------------------------------------------------------


@needs_browser
def test_upscale_compare_and_download(browser, gateway: Gateway, photos: dict[str, Path],  # noqa: ANN001
                                      tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    _open(browser, gateway)
    models = httpx.get(f"{gateway.url}/models", timeout=30).json()["models"]
    offered = _js(browser, "return [...document.getElementById('model').options].map((o) => o.value)")
    assert offered == ["", *(m["variant"] for m in models)]  # "" is the server default
    labels = _js(browser, "return [...document.getElementById('model').options].map((o) => o.text)")
    assert "rlfn - RLFN, 317K params, 19.7 GFLOPs" in labels  # what a user picks between
    assert _js(browser, "return document.getElementById('model').value") == MODEL  # the default

    _fill(browser, model=MODEL, format="png")
    assert _upscale(browser, photos["small"]) == "done", browser.find_element(By.ID, "error").text

    states = _js(browser, "return window.seenStates")
    assert [s for s in states if s in ("uploading", "upscaling", "done")] == ["uploading", "upscaling",
                                                                             "done"], states
    assert browser.find_element(By.ID, "status").text.startswith("done in")
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert _last_upscale_query(browser) == {"model": MODEL, "format": "png"}  # nothing empty sent

    # the result, at 4x, and the original under it, stretched to the same box
    size = _js(browser, """
        const r = document.getElementById('result'), b = document.getElementById('before');
        const rr = r.getBoundingClientRect(), br = b.getBoundingClientRect();
        return {natural: [r.naturalWidth, r.naturalHeight], before: [b.naturalWidth, b.naturalHeight],
                box: [rr.left, rr.top, rr.width, rr.height],
                beforeBox: [br.left, br.top, br.width, br.height],
                beforeSrc: b.src, original: b.complete && b.naturalWidth > 0};
    """)
    assert size["natural"] == [256, 192]
    assert size["before"] == [64, 48] and size["original"]
    assert size["beforeSrc"].startswith("blob:")
    assert size["box"] == size["beforeBox"]  # the original scaled to the output size, under it
    assert size["box"][2:] == [256, 192]     # shown at its own size: fits the panel

    # the download: an object URL named <name>_x4.png holding what the API answers for this photo
    link = browser.find_element(By.ID, "download")
    assert link.is_displayed()
    assert link.get_attribute("href").startswith("blob:")
    assert link.get_attribute("download") == "astronaut_x4.png"
    saved = _download(browser, tmp_path / "downloads")
    assert saved.name == "astronaut_x4.png"
    downloaded = saved.read_bytes()
    assert downloaded.startswith(b"\x89PNG")
    direct = httpx.post(f"{gateway.url}/upscale", content=photos["small"].read_bytes(),
                        params={"model": MODEL, "format": "png"},
                        headers={"Content-Type": "image/png"}, timeout=TIMEOUT_S)
    assert direct.status_code == 200
    assert np.abs(_png_pixels(downloaded) - _png_pixels(direct.content)).max() <= 1

    # the slider: left of the divider the original shows, right of it the result
    compare = browser.find_element(By.ID, "compare")

    def shown_at(fraction: float) -> str:
        return _js(browser, """
            const box = document.getElementById('compare').getBoundingClientRect();
            const hit = document.elementFromPoint(box.left + box.width * arguments[0],
                                                  box.top + box.height / 2);
            return hit ? hit.id : null;
        """, fraction)

    # elementFromPoint sees only the viewport: pressing Upscale scrolled the page down (the
    # model guide makes the form taller than the window), so bring the comparison back first.
    _js(browser, "document.getElementById('compare').scrollIntoView({block: 'center'})")
    _js(browser, """const s = document.getElementById('slider'); s.value = 25;
                    s.dispatchEvent(new Event('input'));""")
    assert browser.find_element(By.ID, "divider").value_of_css_property("left") == "64px"  # 25% of 256
    assert shown_at(0.1) == "before" and shown_at(0.4) == "result"
    # dragging on the picture moves the divider (pointer events, as with a mouse)
    ActionChains(browser).move_to_element_with_offset(compare, 64, 0).click_and_hold() \
        .move_by_offset(-16, 0).release().perform()   # from 75% of the width to 68.75%
    value = float(_js(browser, "return document.getElementById('slider').value"))
    assert 66 <= value <= 71, value
    assert shown_at(0.6) == "before" and shown_at(0.8) == "result"

    # nothing failed in the page (script errors, refused loads) and nothing came from elsewhere
    assert _severe_console_messages(browser) == []
    origins = _js(browser, """return performance.getEntriesByType('resource')
                              .map((e) => new URL(e.name).origin)""")
    assert set(origins) <= {gateway.url}, origins


@needs_browser
def test_fields_are_sent_only_when_filled(browser, gateway: Gateway, photos: dict[str, Path],  # noqa: ANN001
                                          tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, gateway)
    build = "return window.imdsrPage.buildQuery(arguments[0])"
    empty = {"model": "", "format": "", "width": "", "height": "", "fit": "inside", "outscale": ""}
    assert _js(browser, build, empty) == ""
    assert _js(browser, build, {**empty, "model": "c4", "width": " 300 ", "fit": "cover"}) == \
        "model=c4&width=300"  # fit only decides something with both sides
    assert _js(browser, build, {**empty, "width": "300", "height": "200", "fit": "cover",
                                "outscale": "2"}) == "width=300&height=200&fit=cover&outscale=2"
    # the fit choice is offered only with both sides
    fit = browser.find_element(By.ID, "fit")
    _fill(browser, width="300")
    assert not fit.is_enabled()
    _fill(browser, height="200")
    assert fit.is_enabled()
    _fill(browser, width="", height="")

    # a real request with outscale: 64x48 at x2 is 128x96; width, height and fit stay out
    _fill(browser, model=MODEL, format="webp", outscale="2")
    assert _upscale(browser, photos["small"]) == "done", browser.find_element(By.ID, "error").text
    assert _last_upscale_query(browser) == {"model": MODEL, "format": "webp", "outscale": "2"}
    natural = _js(browser, "const r = document.getElementById('result'); "
                           "return [r.naturalWidth, r.naturalHeight]")
    assert natural == [128, 96]
    assert browser.find_element(By.ID, "download").get_attribute("download") == "astronaut_x2.webp"
    saved = _download(browser, tmp_path / "downloads")
    assert saved.name == "astronaut_x2.webp"
    with Image.open(saved) as image:
        assert (image.format, image.size) == ("WEBP", (128, 96))

    upscale_params = {p["name"] for p in httpx.get(f"{gateway.url}/openapi.json", timeout=30)
                      .json()["paths"]["/upscale"]["post"].get("parameters", [])}
    if not {"width", "height", "fit"} <= upscale_params:
        return  # a gateway without output sizes: the page never sent them, checked above
    # a box of 100x100 covered: 100x100 out, the original under it cropped the same way
    _fill(browser, format="png", outscale="", width="100", height="100", fit="cover")
    assert _upscale(browser, photos["small"]) == "done", browser.find_element(By.ID, "error").text
    assert _last_upscale_query(browser) == {"model": MODEL, "format": "png", "width": "100",
                                            "height": "100", "fit": "cover"}
    assert _js(browser, "const r = document.getElementById('result'); "
                        "return [r.naturalWidth, r.naturalHeight]") == [100, 100]
    assert browser.find_element(By.ID, "before").value_of_css_property("object-fit") == "cover"
    assert browser.find_element(By.ID, "download").get_attribute("download") == \
        "astronaut_100x100.png"


@needs_browser
def test_every_output_format_is_offered_and_named_by_its_type(  # noqa: ANN001
        browser, gateway: Gateway, photos: dict[str, Path], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, gateway)
    answer = httpx.get(f"{gateway.url}/formats", timeout=30).json()
    listed, clips = answer["formats"], answer["video"]
    assert "avif" in {f["name"] for f in listed} and "webm" in {f["name"] for f in clips}
    select = "return [...document.getElementById('format').options]"
    assert _js(browser, select + ".map((o) => o.value)") == ["", *(f["name"] for f in listed),
                                                              *(f["name"] for f in clips)]
    assert _js(browser, select + ".map((o) => o.text)") == ["same as input",
                                                             *(f["label"] for f in listed),
                                                             *(f["label"] for f in clips)]

    # each format, asked for and answered: the download's extension is the answer's type's
    for entry in listed:
        _fill(browser, model=MODEL, format=entry["name"])
        assert _upscale(browser, photos["small"]) == "done", browser.find_element(By.ID, "error").text
        name = f"astronaut_x4.{entry['extension']}"
        assert browser.find_element(By.ID, "download").get_attribute("download") == name
        assert entry["label"] in browser.find_element(By.ID, "result-info").text
    saved = _download(browser, tmp_path / "downloads")  # the last one, saved as a person would
    assert saved.name == f"astronaut_x4.{listed[-1]['extension']}"
    with Image.open(saved) as image:
        assert image.size == (256, 192) and image.get_format_mimetype() == listed[-1]["content_type"]

    # "same as input": the name follows what the gateway chose (PNG for a PNG), not the choice
    _fill(browser, format="")
    assert _upscale(browser, photos["small"]) == "done"
    assert browser.find_element(By.ID, "download").get_attribute("download") == "astronaut_x4.png"
    name = "return window.imdsrPage.downloadName('a.png', arguments[0], '', 4, 4)"
    assert _js(browser, name, "image/avif; charset=binary") == "a_x4.avif"
    assert _js(browser, name, "image/jpeg") == "a_x4.jpg"
    assert _js(browser, name, "application/octet-stream") == "a_x4.bin"
    assert _severe_console_messages(browser) == []


@needs_browser
def test_server_errors_are_shown(browser, gateway: Gateway, photos: dict[str, Path]) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    _open(browser, gateway)
    _fill(browser, model=MODEL)
    # a file that is no image: the page shows the API's own error code and detail
    assert _upscale(browser, photos["junk"]) == "error"
    answer = httpx.post(f"{gateway.url}/upscale", content=photos["junk"].read_bytes(),
                        params={"model": MODEL}, headers={"Content-Type": "image/png"},
                        timeout=TIMEOUT_S)
    assert answer.status_code in (400, 415)
    body = answer.json()
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed()
    assert error.text == f"{body['error']} (HTTP {answer.status_code}): {body['detail']}"
    assert not browser.find_element(By.ID, "compare-box").is_displayed()
    assert browser.find_element(By.ID, "submit").is_enabled()  # one can try again

    # a refused parameter (the API's list of {loc, msg}) reads as "outscale: <message>"
    _fill(browser, outscale="100")
    assert _upscale(browser, photos["small"]) == "error"
    text = browser.find_element(By.ID, "error").text
    assert text.startswith("invalid_parameter (HTTP 422): outscale: "), text
    assert "16" in text  # the API's own message names the limit

    # and a good photo after the errors works, clearing the error
    _fill(browser, outscale="")
    assert _upscale(browser, photos["small"]) == "done"
    assert not browser.find_element(By.ID, "error").is_displayed()


@needs_browser
def test_api_key_is_asked_for_when_the_gateway_wants_one(browser, triton_server,  # noqa: ANN001
                                                        photos: dict[str, Path]) -> None:
    from selenium.webdriver.common.by import By

    if "api_keys" not in Settings.model_fields:
        pytest.skip("this gateway has no API keys (IMDSR_API_KEYS)")
    settings = Settings(triton_url=triton_server.grpc_url, default_model=MODEL, api_keys=["s3cret"])
    with Gateway(settings) as gw:
        _open(browser, gw)  # the page itself is open to all
        assert _js(browser, "return document.getElementById('model').dataset.loaded") == "failed"
        note = browser.find_element(By.ID, "models-note")
        assert note.is_displayed() and "API key" in note.text and "HTTP 401" in note.text
        key = browser.find_element(By.ID, "api-key")
        assert key.is_displayed()
        key.send_keys("s3cret")
        key.send_keys("\t")  # leaving the field reloads the models with the key
        _wait(browser, lambda d: d.execute_script(
            "return document.getElementById('model').dataset.loaded") == "true", 30,
            "the models did not load with the key")
        assert not note.is_displayed()
        _fill(browser, model=MODEL)
        assert _upscale(browser, photos["small"]) == "done", browser.find_element(By.ID, "error").text


@needs_browser
def test_each_model_says_when_to_pick_it(browser, gateway: Gateway) -> None:  # noqa: ANN001
    """Issue 27: under the model list, one line per served model (its use_when from GET /models),
    the JPEG model's naming compressed photos; the line of the model picked stands out."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _open(browser, gateway)
    _wait(browser, lambda d: d.execute_script(
        "return document.getElementById('model').dataset.loaded") == "true", 30, "no models")
    served = {m["variant"]: m["use_when"]
              for m in httpx.get(f"{gateway.url}/models").json()["models"]}
    guide = browser.find_element(By.ID, "model-guide")
    assert guide.is_displayed()
    items = guide.find_elements(By.TAG_NAME, "li")
    lines = {i.get_attribute("data-variant"): i.text for i in items}
    assert set(lines) == set(served) and {"c16nla", "c16nla_real"} <= set(lines)
    for variant, line in lines.items():
        assert line == f"{variant}: {served[variant]}"
    assert "compressed" in lines["c16nla_real"] and "JPEG" in lines["c16nla_real"]

    Select(browser.find_element(By.ID, "model")).select_by_value("c16nla_real")
    chosen = [i.get_attribute("data-variant") for i in items if "chosen" in i.get_attribute("class")]
    assert chosen == ["c16nla_real"]
    Select(browser.find_element(By.ID, "model")).select_by_value("")
    assert not [i for i in items if "chosen" in i.get_attribute("class")]


@needs_browser
def test_screenshot(browser, gateway: Gateway, photos: dict[str, Path], tmp_path: Path) -> None:  # noqa: ANN001
    """The page with a result and the divider mid-way: docs/web_page.png when asked for."""
    from selenium.webdriver.common.by import By

    _open(browser, gateway)
    _fill(browser, model=MODEL, format="png")
    assert _upscale(browser, photos["face"]) == "done", browser.find_element(By.ID, "error").text
    assert _js(browser, "const r = document.getElementById('result'); "
                        "return [r.naturalWidth, r.naturalHeight]") == [640, 480]
    _js(browser, """const s = document.getElementById('slider'); s.value = 50;
                    s.dispatchEvent(new Event('input'));""")
    # a viewport as tall as the page, so the whole page is in the picture
    height = _js(browser, "return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 1200, "height": height, "deviceScaleFactor": 1, "mobile": False})
    target = SCREENSHOT if os.environ.get("IMDSR_UPDATE_SCREENSHOT") == "1" else tmp_path / "web_page.png"
    assert browser.save_screenshot(str(target))
    with Image.open(target) as shot:
        assert shot.width >= 1000 and shot.height >= 600


# --- large images: through a job (POST /jobs), with progress and Cancel ---------------------------


@pytest.fixture(scope="module")
def large_photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The astronaut whole (512x512: an x4 output of 4.2 Mpx, over the page's 4-Mpx threshold)
    and at 1024x1024 (16.8 Mpx out, many tiles: still running when Cancel is pressed)."""
    from skimage import data

    root = tmp_path_factory.mktemp("web_page_large")
    astronaut = Image.fromarray(data.astronaut())
    job = root / "astronaut_512.png"
    astronaut.save(job)
    huge = root / "astronaut_1024.png"
    astronaut.resize((1024, 1024), Image.LANCZOS).save(huge)
    return {"job": job, "huge": huge}


@pytest.fixture(scope="module")
def jobs_gateway(triton_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:  # noqa: ANN001
    """A gateway whose job files go to a temporary folder (not ~/.local/state/imdsr/jobs)."""
    settings = Settings(triton_url=triton_server.grpc_url, default_model=MODEL,
                        jobs_dir=tmp_path_factory.mktemp("page_jobs"))
    with Gateway(settings) as gw:
        yield gw


def _watch_progress(driver) -> None:  # noqa: ANN001
    """Record every value of the progress bar and every status line from now on, each with the
    page's state (the bar shows the upload first, then the job's tiles)."""
    driver.execute_script("""
        window.seenProgress = [];
        const bar = document.getElementById('progress'), status = document.getElementById('status');
        const form = document.getElementById('form');
        const note = () => window.seenProgress.push(
            [bar.hasAttribute('value') ? bar.value : null, status.textContent, form.dataset.state]);
        new MutationObserver(note).observe(bar, {attributes: true, attributeFilter: ['value']});
        new MutationObserver(note).observe(status, {childList: true, characterData: true, subtree: true});
    """)


def _paths_requested(driver) -> list[str]:  # noqa: ANN001
    return [urlsplit(u).path for u in
            _js(driver, "return performance.getEntriesByType('resource').map((e) => e.name)")]


def _pick_and_press(driver, photo: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    file_input = driver.find_element(By.ID, "file")
    driver.execute_script("arguments[0].value = ''", file_input)
    file_input.send_keys(str(photo))
    _wait(driver, lambda d: _state(d) == "ready", 10, "picking the file did not arm the form")
    _wait(driver, lambda d: d.find_element(By.ID, "file-info").text.startswith(
        f"{Image.open(photo).width}x"), 10, "the page never read the image's size")
    driver.find_element(By.ID, "submit").click()


@needs_browser
def test_which_images_go_through_a_job(browser, jobs_gateway: Gateway) -> None:  # noqa: ANN001
    _open(browser, jobs_gateway)
    uses = "return window.imdsrPage.usesJob(arguments[0], arguments[1], arguments[2])"
    assert _js(browser, uses, 512, 512, 0)            # 4.19 Mpx out
    assert not _js(browser, uses, 500, 499, 10 ** 9)  # 3.99 Mpx: the pixels decide, not the bytes
    assert _js(browser, uses, None, None, 800_000)    # a TIFF the browser cannot show: by its bytes
    assert not _js(browser, uses, None, None, 700_000)
    shown = "return window.imdsrPage.jobProgress(arguments[0])"
    assert _js(browser, shown, {"status": "queued", "progress": {}}) == {"fraction": None,
                                                                        "text": "queued..."}
    assert _js(browser, shown, {"status": "running", "progress": {
        "tiles_done": 3, "tiles_total": 12, "frames_done": 0, "frames_total": 1}}) == {
        "fraction": 0.25, "text": "upscaling: tile 3 of 12"}
    assert _js(browser, shown, {"status": "running", "progress": {
        "tiles_done": 0, "tiles_total": 0, "frames_done": 1, "frames_total": 4}}) == {
        "fraction": 0.25, "text": "upscaling: frame 1 of 4"}


@needs_browser
def test_a_large_image_goes_through_a_job_with_real_progress(  # noqa: ANN001
        browser, jobs_gateway: Gateway, large_photos: dict[str, Path], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, jobs_gateway)
    _fill(browser, model=MODEL, format="png", outscale="", width="", height="")
    direct_requests = _paths_requested(browser).count("/upscale")
    _watch_progress(browser)
    _pick_and_press(browser, large_photos["job"])
    _wait(browser, lambda d: _state(d) in ("done", "error"), TIMEOUT_S, "no result and no error")
    assert _state(browser) == "done", browser.find_element(By.ID, "error").text
    job_id = _js(browser, "return document.getElementById('form').dataset.job")
    assert job_id

    # the job's own routes, not POST /upscale: created, polled, its result fetched
    paths = _paths_requested(browser)
    assert paths.count("/upscale") == direct_requests
    assert "/jobs" in paths and f"/jobs/{job_id}/result" in paths
    assert paths.count(f"/jobs/{job_id}") >= 2  # polled until done
    job = httpx.get(f"{jobs_gateway.url}/jobs/{job_id}", timeout=30).json()
    assert job["status"] == "done" and job["model"] == MODEL
    tiles = job["progress"]["tiles_total"]
    assert tiles > 1

    # the bar followed the tiles: it moved forward through values between 0 and 1, with the
    # tile counts in the status line, and ended full
    seen = _js(browser, "return window.seenProgress")
    values = [v for v, _, state in seen if v is not None and state in ("upscaling", "done")]
    texts = [t for _, t, _ in seen]
    assert [v for v in values if 0 < v < 1], (values, texts)
    assert values == sorted(values) and values[-1] == 1, values
    assert any(re.fullmatch(rf"upscaling: tile [1-9]\d* of {tiles} \(\d+ s\)", t) for t in texts), texts
    assert browser.find_element(By.ID, "status").text.startswith("done in")
    assert not browser.find_element(By.ID, "cancel").is_displayed()

    # the result as the direct route gives it, named the same way
    assert _js(browser, "const r = document.getElementById('result'); "
                        "return [r.naturalWidth, r.naturalHeight]") == [2048, 2048]
    assert browser.find_element(By.ID, "download").get_attribute("download") == "astronaut_512_x4.png"
    saved = _download(browser, tmp_path / "downloads")
    direct = httpx.post(f"{jobs_gateway.url}/upscale", content=large_photos["job"].read_bytes(),
                        params={"model": MODEL, "format": "png"},
                        headers={"Content-Type": "image/png"}, timeout=TIMEOUT_S)
    assert direct.status_code == 200
    assert np.abs(_png_pixels(saved.read_bytes()) - _png_pixels(direct.content)).max() <= 1
    assert _severe_console_messages(browser) == []


@needs_browser
def test_cancel_stops_the_job_and_restores_the_page(  # noqa: ANN001
        browser, jobs_gateway: Gateway, photos: dict[str, Path], large_photos: dict[str, Path]) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, jobs_gateway)
    _fill(browser, model=MODEL, format="", outscale="", width="", height="")
    assert _upscale(browser, photos["small"]) == "done"  # a result on the page before
    shown_before = _js(browser, "return document.getElementById('result').src")
    cancel = browser.find_element(By.ID, "cancel")
    assert not cancel.is_displayed()  # small images go directly: nothing to cancel

    _pick_and_press(browser, large_photos["huge"])
    _wait(browser, lambda d: d.execute_script("return document.getElementById('form').dataset.job"),
          TIMEOUT_S, "no job was created")
    job_id = _js(browser, "return document.getElementById('form').dataset.job")
    _wait(browser, lambda d: (d.execute_script(
        "const p = document.getElementById('progress'); return p.hasAttribute('value') && p.value")
        or 0) > 0, TIMEOUT_S, "the job's tiles never started")
    assert _state(browser) == "upscaling" and cancel.is_displayed() and cancel.is_enabled()
    cancel.click()
    _wait(browser, lambda d: _state(d) in ("cancelled", "error", "done"), 30, "Cancel did nothing")
    assert _state(browser) == "cancelled", browser.find_element(By.ID, "error").text

    # the gateway's job is cancelled, and stays so; the page is as before the press
    job = httpx.get(f"{jobs_gateway.url}/jobs/{job_id}", timeout=30).json()
    assert job["status"] == "cancelled"
    assert job["progress"]["tiles_done"] < job["progress"]["tiles_total"]
    assert browser.find_element(By.ID, "status").text == f"cancelled (job {job_id})"
    assert not cancel.is_displayed() and not browser.find_element(By.ID, "progress").is_displayed()
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert browser.find_element(By.ID, "submit").is_enabled()
    assert browser.find_element(By.ID, "file").is_enabled()
    assert _js(browser, "return document.getElementById('result').src") == shown_before
    assert f"/jobs/{job_id}/result" not in _paths_requested(browser)

    # and the page works again
    assert _upscale(browser, photos["small"]) == "done"
    assert _severe_console_messages(browser) == []


# --- clips: always a job, progress by frames, played in a <video> ---------------------------------


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny clip with a tone (96x54, 2 s at 12 fps: seconds of c4) and a longer one at
    320x180 (36 frames of c16nla at 720p: still running when Cancel is pressed)."""
    from imdsr.video.synthetic import ClipSpec, write_clip

    root = tmp_path_factory.mktemp("web_page_clips")
    return {"small": write_clip(root / "clip.mp4", ClipSpec(seconds=2.0, fps=12, width=96, height=54)),
            "long": write_clip(root / "long.mp4", ClipSpec(seconds=3.0, fps=12, width=320,
                                                          height=180))}


def _pick_clip_and_press(driver, clip: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    file_input = driver.find_element(By.ID, "file")
    driver.execute_script("arguments[0].value = ''", file_input)
    file_input.send_keys(str(clip))
    _wait(driver, lambda d: _state(d) == "ready", 10, "picking the clip did not arm the form")
    driver.find_element(By.ID, "submit").click()


@needs_browser
def test_a_clip_goes_through_a_job_shows_frames_cancels_and_plays(  # noqa: ANN001
        browser, jobs_gateway: Gateway, clips: dict[str, Path], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from imdsr.video.probe import probe

    _open(browser, jobs_gateway)
    assert "video/mp4" in browser.find_element(By.ID, "file").get_attribute("accept")
    page = "return window.imdsrPage"
    assert _js(browser, page + ".isClip('video/webm', 'a.bin')")
    assert _js(browser, page + ".isClip('', 'holiday.MKV')")
    assert not _js(browser, page + ".isClip('image/png', 'a.png')")
    # each file takes the format of its kind; the other kind's is not sent
    assert _js(browser, page + ".formatFor('webm', true)") == "webm"
    assert _js(browser, page + ".formatFor('webp', true)") == ""
    assert _js(browser, page + ".formatFor('webm', false)") == ""
    assert _js(browser, page + ".jobProgress(arguments[0], true)", {"status": "running", "progress": {
        "tiles_done": 5, "tiles_total": 24, "frames_done": 5, "frames_total": 24}}) == {
        "fraction": 5 / 24, "text": "upscaling: frame 5 of 24"}

    # a longer clip: Cancel stops its job
    _fill(browser, model="c16nla", format="", outscale="", width="", height="")
    _pick_clip_and_press(browser, clips["long"])
    _wait(browser, lambda d: (d.execute_script(
        "const p = document.getElementById('progress'); return p.hasAttribute('value') && p.value")
        or 0) > 0, TIMEOUT_S, "the clip's frames never started")
    job_id = _js(browser, "return document.getElementById('form').dataset.job")
    cancel = browser.find_element(By.ID, "cancel")
    assert _state(browser) == "upscaling" and cancel.is_displayed()
    assert re.fullmatch(r"upscaling: frame \d+ of 36 \(\d+ s\)",
                        browser.find_element(By.ID, "status").text)
    cancel.click()
    _wait(browser, lambda d: _state(d) in ("cancelled", "error", "done"), 30, "Cancel did nothing")
    assert _state(browser) == "cancelled", browser.find_element(By.ID, "error").text
    assert httpx.get(f"{jobs_gateway.url}/jobs/{job_id}", timeout=30).json()["status"] == "cancelled"

    # the tiny one, as WebM (VP9 plays in any Chromium): frames on the bar, then it plays
    _fill(browser, model=MODEL, format="webm")
    _watch_progress(browser)
    _pick_clip_and_press(browser, clips["small"])
    _wait(browser, lambda d: _state(d) in ("done", "error"), TIMEOUT_S, "no result and no error")
    assert _state(browser) == "done", browser.find_element(By.ID, "error").text
    texts = [t for _, t, _ in _js(browser, "return window.seenProgress")]
    assert any(re.fullmatch(r"upscaling: frame [1-9]\d* of 24 \(\d+ s\)", t) for t in texts), texts
    video = browser.find_element(By.ID, "video-result")
    assert video.is_displayed() and not browser.find_element(By.ID, "compare").is_displayed()
    assert _js(browser, "const v = document.getElementById('video-result'); "
                        "return [v.videoWidth, v.videoHeight, v.controls]") == [384, 216, True]
    assert abs(_js(browser, "return document.getElementById('video-result').duration") - 2.0) < 0.1
    assert browser.find_element(By.ID, "download").get_attribute("download") == "clip_x4.webm"
    saved = _download(browser, tmp_path / "downloads")
    info = probe(saved)
    assert (info.width, info.height, info.codec) == (384, 216, "vp9")
    assert [s.kind for s in info.streams] == ["audio"]
    assert _severe_console_messages(browser) == []
