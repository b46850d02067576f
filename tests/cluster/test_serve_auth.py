"""API keys and the page at `/`, over real HTTP on one keyed replica of the tiny model; the page is driven in
a real headless chromium."""

import base64
import io
import shutil

import httpx
import numpy as np
import pytest
from PIL import Image

from cluster.config import ConfigError, QThinkConfig, RolloutConfig, ServeConfig
from cluster.ray_cluster import free_port
from cluster.serve_auth import authorize, check_exposure, load_api_keys
from cluster.serve_requests import ApiError

KEYS = ("qk-first-0123456789", "qk-second-9876543210")


def test_authorize_needs_bearer_and_one_of_the_keys():
    keys = tuple(k.encode() for k in KEYS)
    authorize(f"Bearer {KEYS[1]}", keys)
    authorize("bearer " + KEYS[0], keys)
    authorize(None, ())  # no keys configured: open
    for header, word in ((None, "missing"), ("Basic abc", "missing"), ("Bearer", "missing"),
                         (f"Bearer {KEYS[0][:-1]}", "invalid"), (f"Bearer {KEYS[0]}x", "invalid")):
        with pytest.raises(ApiError, match=word) as refused:
            authorize(header, keys)
        assert refused.value.status == 401 and KEYS[0] not in refused.value.message


def test_key_file_skips_comments_and_an_empty_file_is_an_error(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"# team A\n{KEYS[0]}\n\n  {KEYS[1]}  \n")
    assert load_api_keys(str(path)) == tuple(k.encode() for k in KEYS)
    path.write_text("# nobody yet\n")
    with pytest.raises(ConfigError, match="holds no key"):
        load_api_keys(str(path))


def test_an_open_endpoint_beyond_loopback_is_refused_unless_asked_for(tmp_path):
    check_exposure(QThinkConfig())  # 127.0.0.1 without keys: fine
    with pytest.raises(ConfigError, match="allow_unauthenticated"):
        check_exposure(QThinkConfig(serve=ServeConfig(host="0.0.0.0")))
    check_exposure(QThinkConfig(serve=ServeConfig(host="0.0.0.0", allow_unauthenticated=True)))
    check_exposure(QThinkConfig(serve=ServeConfig(host="0.0.0.0", api_keys_file=str(tmp_path / "keys"))))


def _png(size: int = 112) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def url(ray_local, tiny_model_dir, tmp_path_factory):
    from ray import serve

    from cluster.serve import start

    keys = tmp_path_factory.mktemp("keys") / "api_keys"
    keys.write_text("\n".join(KEYS) + "\n")
    cfg = QThinkConfig(rollout=RolloutConfig(max_tokens=16, max_model_len=1024),
                       serve=ServeConfig(min_replicas=1, max_replicas=1, port=free_port(), api_keys_file=str(keys)))
    yield start(str(tiny_model_dir), cfg)
    serve.shutdown()


@pytest.mark.slow
def test_every_model_route_wants_a_key_and_health_and_the_page_do_not(url):
    body = {"image": base64.b64encode(_png()).decode(), "samples": 1}
    with httpx.Client(base_url=url, timeout=120) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 200 and "/v1/score" in client.get("/").text
        for headers, status in (({}, 401), ({"Authorization": "Bearer nope"}, 401),
                                ({"Authorization": f"Bearer {KEYS[1]}"}, 200)):
            for method, path, payload in (("GET", "/v1/models", None), ("POST", "/v1/score", body)):
                response = client.request(method, path, json=payload, headers=headers)
                assert response.status_code == status, (path, headers, response.text)
                if status == 401:
                    assert response.json()["error"]["type"] == "authentication_error"
                    assert "nope" not in response.text


@pytest.mark.slow
def test_the_openai_client_gets_in_with_a_key_and_not_without(url):
    import openai

    messages = [{"role": "user", "content": "Rate the quality of this picture."}]
    chat = openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS[0]).chat.completions.create(
        model="tiny", messages=messages, max_tokens=4)
    assert chat.choices[0].message.role == "assistant"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong").chat.completions.create(
            model="tiny", messages=messages, max_tokens=4)


def _browser():
    """Headless chromium through chromedriver, or a skip naming what is missing."""
    pytest.importorskip("selenium", reason="selenium is not installed (test extra)")
    from selenium import webdriver

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (binary and driver):
        pytest.skip("no chromium/chromedriver on this machine (scripts/setup_env.sh installs them with apt as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,1100"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


@pytest.mark.slow
def test_a_person_scores_a_picture_on_the_page_in_a_real_browser(url, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    picture = tmp_path / "photo.png"
    picture.write_bytes(_png())
    browser = _browser()
    try:
        browser.get(url + "/")
        browser.find_element(By.ID, "file").send_keys(str(picture))
        browser.find_element(By.ID, "samples").clear()
        browser.find_element(By.ID, "samples").send_keys("2")
        browser.find_element(By.ID, "go").click()  # no key yet: the server's refusal is shown
        WebDriverWait(browser, 60).until(until.text_to_be_present_in_element((By.ID, "error"), "401"))
        browser.find_element(By.ID, "key").send_keys(KEYS[0])
        browser.find_element(By.ID, "go").click()
        WebDriverWait(browser, 120).until(lambda b: b.find_element(By.ID, "result").is_displayed())
        score = browser.find_element(By.ID, "score").text
        samples = browser.find_element(By.ID, "n").text
        reasoning = browser.find_elements(By.CSS_SELECTOR, "#reasoning pre")
        browser.save_screenshot(str(tmp_path / "page.png"))
    finally:
        browser.quit()
    assert score == "no answer" or 1.0 <= float(score) <= 5.0
    assert samples == "2" and len(reasoning) == 2
