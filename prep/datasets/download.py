"""`make data`: download and unpack the official MINC-2500 archive (2.3 GB), resumably.

The download continues a partial file with an HTTP Range request; the unpacked tree is checked
against the counts the dataset's readme gives (23 classes, 57,500 images, 5 splits).
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from foundation import storage
from foundation.cli import stage_main
from foundation.progress import progress

URL = "http://opensurfaces.cs.cornell.edu/static/minc/minc-2500.tar.gz"
ARCHIVE = "minc-2500.tar.gz"
EXPECTED = {"classes": 23, "images": 57500, "split_files": 15}
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    pass


def _where_to_put(dest: Path) -> str:
    return (f"Download {URL} on a machine with a network and put {ARCHIVE} in {dest} (this "
            f"command resumes and unpacks it), or unpack it yourself so that "
            f"{dest / 'minc-2500' / 'categories.txt'} exists.")


def fetch(url: str, path: Path, timeout: float = 20.0) -> None:
    """Download url to path, continuing `path.part` if an earlier run was interrupted."""
    part = path.with_name(path.name + ".part")
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and done:  # the partial file is already whole
            part.replace(path)
            return
        raise DownloadError(
            f"{url} answered HTTP {err.code}. {_where_to_put(path.parent)}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"cannot reach {url} ({reason}). {_where_to_put(path.parent)}") from None
    with response:
        if done and response.status != 206:  # the server ignored Range: start again
            done = 0
        total = done + int(response.headers.get("Content-Length", 0)) or None
        with open(part, "ab" if done else "wb") as file, progress(
            total=total, initial=done, unit="B", unit_scale=True, desc=path.name
        ) as bar:
            while chunk := response.read(CHUNK):
                file.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise DownloadError(f"{part} has {part.stat().st_size} of {total} bytes; run again to "
                            f"resume")
    part.replace(path)


def unpack(archive: Path, dest: Path) -> Path:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(dest, filter="data")  # no absolute paths, links out, devices
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DownloadError(f"{archive} is not a complete archive ({err}); delete it and run "
                            f"again") from None
    return dest / "minc-2500"


def check_tree(root: Path, expected: dict = EXPECTED) -> dict:
    """Counts of the unpacked tree; an error if they differ from the official ones."""
    categories = root / "categories.txt"
    found = {
        "classes": len(categories.read_text().split()) if categories.is_file() else 0,
        "images": sum(1 for _ in (root / "images").glob("*/*.jpg")),
        "split_files": sum(1 for _ in (root / "labels").glob("*.txt")),
    }
    if found != expected:
        raise DownloadError(f"{root} holds {found}, expected {expected}: the archive is not the "
                            f"official MINC-2500")
    return found


@stage_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m prep.datasets.download", description=__doc__)
    p.add_argument("--dest", type=Path, default=Path("data"), help="folder for minc-2500/")
    p.add_argument("--url", default=URL)
    args = p.parse_args(argv)
    args.dest.mkdir(parents=True, exist_ok=True)
    archive = args.dest / ARCHIVE
    try:
        if (args.dest / "minc-2500" / "categories.txt").is_file():
            counts = check_tree(args.dest / "minc-2500")
            print(f"{args.dest / 'minc-2500'} is already there: {counts}")
            return 0
        if not archive.is_file():
            fetch(args.url, archive)
        print(f"{archive}: sha256 {storage.sha256(archive)}")
        root = unpack(archive, args.dest)
        print(f"unpacked {root}: {check_tree(root)}")
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
