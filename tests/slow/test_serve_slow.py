"""The long (make test-slow) tests of integration/test_serve.py."""

import concurrent.futures
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
import numpy as np
import pytest
from helpers import ROOT, run_cli
from test_serve import AUTH, TOKEN, _get, _npz, live  # noqa: F401


@pytest.mark.slow
def test_live_concurrency_batches_and_results_do_not_depend_on_batch_mates(live):
  url, _, _ = live
  def one(seed):
    return _get(url + "/v1/generate", {"num": 8, "seed": seed, "format": "npz"}, AUTH)
  solo = {s: _npz(one(s)[1])["images"] for s in range(4)}
  with concurrent.futures.ThreadPoolExecutor(32) as pool:
    results = list(pool.map(one, [s % 4 for s in range(64)]))
  for i, (status, content, _) in enumerate(results):
    assert status == 200 and np.array_equal(_npz(content)["images"], solo[i % 4])
  metrics = _get(url + "/metrics")[1].decode()
  line = [x for x in metrics.splitlines() if x.startswith('artjax_batch_rows_count{model="')][0]
  calls = float(line.split()[-1])
  assert calls < 4 + 64     # concurrent requests were merged into fewer calls
  assert json.loads(_get(url + "/healthz")[1])["compiles_since_ready"] == 0


@pytest.mark.slow
def _select_kind(d, kind):
  from selenium.webdriver.support.ui import Select
  select = Select(d.find_element("id", "model"))
  select.select_by_visible_text(next(o.text for o in select.options if f"({kind}," in o.text))


def test_web_page_in_headless_chromium(live):
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  from selenium.webdriver.support.ui import Select, WebDriverWait
  chromium = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None)
  driver_bin = next((p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if os.path.exists(p)), None)
  if chromium is None or driver_bin is None:
    pytest.skip("no chromium + chromium-driver (make test-slow installs them with apt-get as root)")
  url, _, _ = live
  opts = webdriver.ChromeOptions()
  opts.binary_location = chromium
  for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--autoplay-policy=no-user-gesture-required"):
    opts.add_argument(a)
  d = webdriver.Chrome(service=Service(driver_bin), options=opts)
  try:
    d.get(url + "/")
    wait = WebDriverWait(d, 60)
    wait.until(lambda d: "ready" in d.find_element("id", "status").text)
    d.find_element("id", "token").send_keys("wrong-token-xyz")
    d.find_element("id", "generate").click()
    wait.until(lambda d: "403" in d.find_element("id", "error").text)
    d.find_element("id", "token").clear()
    d.find_element("id", "token").send_keys(TOKEN)
    d.find_element("id", "generate").click()
    wait.until(lambda d: d.execute_script(
        "const i = document.getElementById('grid'); return i.complete && i.naturalWidth > 0"))
    assert d.find_element("id", "error").text == ""
    assert d.find_element("id", "grid").is_displayed()         # shown, not only drawn
    d.find_element("id", "animate").click()                    # POST /v1/animate: an MP4 plays
    wait.until(lambda d: d.execute_script(
        "const v = document.getElementById('video'); return v.readyState >= 2 && v.videoWidth === 128"))
    assert d.find_element("id", "status").text.startswith("animated")
    Select(d.find_element("id", "model")).select_by_index(1)     # the music model
    d.find_element("id", "generate").click()
    wait.until(lambda d: d.execute_script(
        "const a = document.getElementById('audio'); return a.src && a.readyState >= 1 && a.duration > 0"))
    assert d.find_element("id", "midi").get_attribute("href").startswith("blob:")
    first = d.find_element("id", "audio").get_attribute("src")
    Select(d.find_element("id", "mood")).select_by_visible_text("sad")   # mood: minor, slower
    d.find_element("id", "generate").click()
    wait.until(lambda d: d.execute_script(
        "const a = document.getElementById('audio'); return a.src !== arguments[0] && "
        "a.readyState >= 1 && a.duration > 0", first))
    assert d.find_element("id", "error").text == ""
    # repair an uploaded picture with its mask (multipart through the page)
    from PIL import Image
    from artjax.image.data import load_images
    folder = os.path.dirname(str(live[2]))
    x = load_images("digits").images("test")[5][..., 0]
    m = np.zeros((8, 8), np.uint8)
    m[:, 4:] = 255
    Image.fromarray(x).resize((64, 64), Image.NEAREST).save(os.path.join(folder, "digit.png"))
    Image.fromarray(m).resize((64, 64), Image.NEAREST).save(os.path.join(folder, "mask.png"))
    _select_kind(d, "repair")                                   # the inpainting network
    assert d.find_element("id", "generate").text == "Repair"
    d.find_element("id", "generate").click()
    wait.until(lambda d: "choose a picture file first" in d.find_element("id", "error").text)
    d.find_element("id", "image").send_keys(os.path.join(folder, "digit.png"))
    d.find_element("id", "mask").send_keys(os.path.join(folder, "mask.png"))
    d.find_element("id", "generate").click()
    wait.until(lambda d: d.execute_script(
        "const i = document.getElementById('picture'); return i.complete && i.naturalWidth === 8"))
    assert d.find_element("id", "error").text == "" and d.find_element("id", "status").text == "repaired"
    _select_kind(d, "poems")                                    # the poetry model
    Select(d.find_element("id", "form")).select_by_value("wujue")
    d.find_element("id", "strict").click()
    d.find_element("id", "acrostic").send_keys("山水風月")
    d.find_element("id", "num").clear()
    d.find_element("id", "num").send_keys("2")
    d.find_element("id", "generate").click()
    wait.until(lambda d: "generated" in d.find_element("id", "status").text)
    poems = [p.text for p in d.find_elements("css selector", "#verses p")]
    assert len(poems) == 2 and all(p.count("✓") == 2 for p in poems), poems   # rhyme and tones
    assert all("".join(v[0] for v in p.split("\n")[:4]) == "山水風月" for p in poems)
    if os.path.exists("/usr/share/fonts/truetype/arphic/ukai.ttc"):
      wait.until(lambda d: d.execute_script(
          "const i = document.getElementById('sheet'); return i.complete && i.naturalWidth > 0"))
  finally:
    d.quit()


@pytest.mark.slow
def test_connection_flood_and_huge_headers_do_not_take_the_service_down(live):
  url, proc, _ = live
  port = int(url.rsplit(":", 1)[1])
  idle = []
  try:
    for _ in range(400):                  # more than MAX_CONNECTIONS, none sends a byte
      s = socket.create_connection(("127.0.0.1", port), timeout=5)
      idle.append(s)
    t = time.time()
    status = _get(url + "/v1/generate", {"num": 2, "format": "npz"}, AUTH, timeout=30)[0]
    assert status in (200, 503) and time.time() - t < 20   # answered, not hung or reset
  finally:
    for s in idle:
      s.close()
  time.sleep(1.0)
  assert _get(url + "/v1/generate", {"num": 2, "format": "npz"}, AUTH)[0] == 200
  probe_big_head_and_idle_keep_alive(port)
  assert _get(url + "/healthz")[0] == 200 and proc.poll() is None


@pytest.mark.slow
def test_sigterm_finishes_in_flight_requests_and_exits_0(live):
  url, proc, log = live
  models = json.loads(_get(url + "/healthz")[1])["models"]
  music = [m["name"] for m in models if m["kind"] == "music"][0]
  def timed(seed):
    status = _get(url + "/v1/generate", {"model": music, "num": 4, "seed": seed}, AUTH)[0]
    return status, time.monotonic()
  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    futures = [pool.submit(timed, s) for s in range(16)]
    # signal as soon as the first answer is back: the others are queued or being served
    concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    results = [f.result() for f in futures]
  assert [r[0] for r in results] == [200] * 16
  assert max(r[1] for r in results) > signalled      # some were still in flight
  assert proc.wait(timeout=60) == 0
  text = log.read_text()
  assert TOKEN not in text and "stopped" in text



def probe_big_head_and_idle_keep_alive(port):
  """A 256 KB header is refused (4xx or closed); an idle keep-alive connection is closed by
  the server within 15 s. The same probes for both backends (test_serve_ray_slow.py)."""
  with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (256 * 1024) + b"\r\n\r\n")
    try:
      reply = s.recv(200)
    except ConnectionResetError:
      reply = b""
  assert reply == b"" or reply.split(b" ")[1][:1] == b"4", reply[:80]
  with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    time.sleep(0.5)
    s.recv(65536)
    t = time.time()
    while s.recv(65536):
      pass
    assert time.time() - t < 15
