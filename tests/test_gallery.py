"""The committed figure gallery (docs/figures/index.html) as a person sees it: opened in headless
Chromium (Debian's `chromium`), every image loads with a non-zero natural size, and every
figure's caption and lecture section are on the page; a screenshot goes to the test's folder."""

import html
import json
import re
import shutil
import subprocess

import pytest

from jdl import cli
from tests.conftest import ROOT

GALLERY = ROOT / 'docs/figures'
# Run in the page once it has loaded (images included): each image's natural size, as JSON.
PROBE = """<script>
window.addEventListener('load', () => {
  const out = document.createElement('pre');
  out.id = 'jdl-probe';
  out.textContent = JSON.stringify(
    [...document.images].map(i => [i.getAttribute('src'), i.naturalWidth, i.naturalHeight]));
  document.body.appendChild(out);
});
</script>"""

pytestmark = pytest.mark.integration


def chromium(tmp_path, *args: str) -> str:
  browser = shutil.which('chromium')
  # `make test-integration` installs it: missing, the check fails rather than skips.
  assert browser, "needs Debian's chromium package: apt-get install -y chromium"
  proc = subprocess.run(
    [
      browser,
      '--headless',
      '--no-sandbox',  # as root in a container
      '--disable-gpu',
      f'--user-data-dir={tmp_path / "profile"}',
      '--virtual-time-budget=10000',
      *args,
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 0, proc.stderr
  return proc.stdout


def open_gallery(folder, tmp_path) -> tuple[list, str]:
  """The page's images as [src, natural width, natural height], and the DOM after loading."""
  copy = tmp_path / 'gallery'
  shutil.copytree(folder, copy)
  page = copy / 'index.html'
  page.write_text(page.read_text().replace('</body>', PROBE + '</body>'))
  dom = chromium(tmp_path, '--dump-dom', page.as_uri())
  found = re.search(r'<pre id="jdl-probe">(.*?)</pre>', dom, re.S)
  assert found, 'the page did not finish loading'
  return json.loads(html.unescape(found.group(1))), dom


def test_every_image_loads_and_every_caption_is_there(tmp_path):
  images, dom = open_gallery(GALLERY, tmp_path)
  sources = re.findall(r'<img src="([^"]+)"', (GALLERY / 'index.html').read_text())
  assert len(sources) >= 10 and [src for src, _, _ in images] == sources
  for src, width, height in images:
    assert width > 0 and height > 0, f'{src} did not load'
  for name, figure in cli.FIGURES.items():
    assert f'id="{name}"' in dom
    assert html.escape(figure.caption, quote=False) in dom, f'the caption of {name}'
    assert html.escape(figure.section, quote=False) in dom, f'the lecture section of {name}'

  shot = tmp_path / 'gallery.png'
  chromium(
    tmp_path,
    '--hide-scrollbars',
    '--window-size=1200,3000',
    f'--screenshot={shot}',
    (GALLERY / 'index.html').as_uri(),
  )
  assert shot.read_bytes()[:4] == b'\x89PNG' and shot.stat().st_size > 50_000


def test_a_broken_image_is_seen(tmp_path):
  """The check above can fail: an image that is not there has natural size 0."""
  folder = tmp_path / 'broken'
  folder.mkdir()
  shutil.copy(GALLERY / 'mlp_history.png', folder)
  (folder / 'index.html').write_text(
    '<html><body><img src="mlp_history.png"><img src="missing.png"></body></html>'
  )
  images, _ = open_gallery(folder, tmp_path)
  assert images[0][0] == 'mlp_history.png' and images[0][1] > 0
  assert images[1] == ['missing.png', 0, 0]
