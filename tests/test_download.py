"""`groundreport download flickr30k` against a local HTTP server (127.0.0.1), never the internet."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from groundreport.download import download_flickr30k
from groundreport.errors import UserError


def make_archive() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            img = io.BytesIO()
            Image.new("RGB", (20, 20), (i * 80, 10, 10)).save(img, "JPEG")
            zf.writestr(f"Images/{i}.jpg", img.getvalue())
        zf.writestr("captions.txt", "image,caption\n" + "".join(f"{i}.jpg,a photo number {i}\n" for i in range(3)))
        zf.writestr("Images/padding.bin", bytes(range(256)) * 400)  # makes the parts worth resuming
    return buf.getvalue()


class Server:
    """Serves three parts with Range support; the first request for part01 is cut off halfway."""

    def __init__(self, data: bytes, cut_first: bool = True):
        third = len(data) // 3
        self.parts = {"flickr30k_part00": data[:third], "flickr30k_part01": data[third:2 * third],
                      "flickr30k_part02": data[2 * third:]}
        self.cut_pending = cut_first
        self.ranges: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                body = outer.parts.get(name)
                if body is None:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                outer.ranges.append((name, rng))
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                chunk = body[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if name == "flickr30k_part01" and outer.cut_pending:
                    outer.cut_pending = False
                    self.wfile.write(chunk[: len(chunk) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # drop the connection mid-transfer
                    return
                self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/releases/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def server():
    s = Server(make_archive())
    yield s
    s.close()


def test_download_resumes_an_interrupted_part(server, tmp_path):
    images, captions = download_flickr30k(tmp_path / "f30k", server.url, progress=False)
    assert sorted(p.name for p in images.iterdir()) == ["0.jpg", "1.jpg", "2.jpg", "padding.bin"]
    assert captions.read_text().startswith("image,caption")
    resumed = [r for n, r in server.ranges if n == "flickr30k_part01" and r]
    assert resumed and resumed[0] != "bytes=0-", server.ranges  # the second request continued mid-file
    assert sorted(p.name for p in (tmp_path / "f30k").iterdir()) == ["Images", "captions.txt"]


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    dest = tmp_path / "f30k"
    dest.mkdir()
    server.cut_pending = False
    (dest / "flickr30k_part00.part").write_bytes(server.parts["flickr30k_part00"][:1000])
    download_flickr30k(dest, server.url, progress=False)
    assert ("flickr30k_part00", "bytes=1000-") in server.ranges


def test_cli_download_then_build_reads_it(server, tmp_path):
    res = subprocess.run([sys.executable, "-m", "groundreport", "download", "flickr30k", "--dest",
                          str(tmp_path / "d"), "--base-url", server.url, "--no-progress"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    from groundreport.datasets import load_dataset

    fmt, ex = load_dataset(tmp_path / "d" / "captions.txt", None)
    assert fmt == "csv" and len(ex) == 3


def test_missing_file_is_one_clear_error(server, tmp_path):
    with pytest.raises(UserError, match="HTTP 404"):
        download_flickr30k(tmp_path / "x", server.url + "nothing-here/", parts=("nope",), progress=False)


def test_hf_source_writes_the_notebook_layout(tmp_path, monkeypatch):
    """The conversion from HF rows to the notebook layout. The hub itself is out of reach here,
    so ``datasets.load_dataset`` is replaced by a stand-in that streams rows of the real columns."""
    import types

    rows = [{"image": Image.new("RGB", (8, 8), (i * 50, 0, 0)), "caption": [f"cap {i} a", f"cap {i}, b"],
             "split": "test" if i % 2 == 0 else "train", "filename": f"{1000 + i}.jpg", "img_id": str(i)}
            for i in range(6)]

    class Stream(list):
        def shuffle(self, seed, buffer_size):
            return Stream(reversed(self))

    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda repo, split, streaming: Stream(rows)
    monkeypatch.setitem(sys.modules, "datasets", fake)
    from groundreport.datasets import load_dataset
    from groundreport.download import download_flickr30k_hf

    images, captions = download_flickr30k_hf(tmp_path / "hf", split="test", limit=2, progress=False)
    assert sorted(p.name for p in images.iterdir()) == ["1002.jpg", "1004.jpg"]  # test rows only, 2 of them
    fmt, ex = load_dataset(captions, None)
    assert fmt == "csv" and [c.text for c in ex[0].captions] == ["cap 4 a", "cap 4, b"]
