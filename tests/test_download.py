"""`make data` against a real HTTP server on loopback that honours Range requests."""

import io
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from prep.datasets import download


def archive_bytes() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in [("minc-2500/categories.txt", b"brick\nwood\n"),
                           ("minc-2500/images/brick/brick_000000.jpg", b"x" * 3000),
                           ("minc-2500/labels/train1.txt", b"images/brick/brick_000000.jpg\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def server():
    payload = archive_bytes()
    ranges = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            start = 0
            if header := self.headers.get("Range"):
                start = int(header.split("=")[1].rstrip("-"))
                ranges.append(start)
                self.send_response(206)
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(payload) - start))
            self.end_headers()
            self.wfile.write(payload[start:])

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/{download.ARCHIVE}", payload, ranges
    httpd.shutdown()


def test_interrupted_download_resumes_with_range(tmp_path, server):
    url, payload, ranges = server
    (tmp_path / f"{download.ARCHIVE}.part").write_bytes(payload[:100])
    small = {"classes": 2, "images": 1, "split_files": 1}
    download.fetch(url, tmp_path / download.ARCHIVE)
    assert ranges == [100]
    assert (tmp_path / download.ARCHIVE).read_bytes() == payload
    root = download.unpack(tmp_path / download.ARCHIVE, tmp_path)
    assert download.check_tree(root, small) == small
    with pytest.raises(download.DownloadError, match="not the official MINC-2500"):
        download.check_tree(root)


def test_offline_fails_at_once_and_says_where_to_put_the_data(tmp_path, capsys):
    start = time.monotonic()
    code = download.main(["--dest", str(tmp_path), "--url", "http://127.0.0.1:9/minc.tar.gz"])
    assert code == 1 and time.monotonic() - start < 10
    err = capsys.readouterr().err
    assert "cannot reach" in err and str(tmp_path / "minc-2500" / "categories.txt") in err
