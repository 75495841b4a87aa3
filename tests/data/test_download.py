"""Downloads, served from a local http.server on 127.0.0.1 (no other network)."""

from __future__ import annotations

import hashlib
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fusionrec.data import download as dl
from fusionrec.data.catalog import load
from fusionrec.data.download import DownloadError, Source, download, source_urls
from fusionrec.errors import DataError, UnknownNameError

ML100K = {
    "u.data": "1\t10\t4\t881250949\n2\t10\t3\t881250950\n",
    "u.item": "10|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(["0"] * 18 + ["1"]) + "\n",
    "u.user": "1|24|M|technician|85711\n2|53|F|other|94043\n",
    "u.genre": "".join(f"g{i}|{i}\n" for i in range(19)) + "\n",
}
LASTFM = {
    "user_artists.dat": "userID\tartistID\tweight\n2\t51\t10\n",
    "artists.dat": "id\tname\turl\tpictureURL\n51\tBand\thttp://a\thttp://b\n",
    "tags.dat": "tagID\ttagValue\n1\trock\n",
    "user_taggedartists.dat": "userID\tartistID\ttagID\tday\tmonth\tyear\n2\t51\t1\t1\t1\t2009\n",
    "user_friends.dat": "userID\tfriendID\n2\t3\n3\t2\n",
}
KG = {
    "kg.txt": "0\tmusic.artist.genre\t1\n",
    "item_index2entity_id.txt": "51\t0\n",
    "user_artists.dat": "userID\tartistID\tweight\n2\t51\t10\n2\t52\t3\n",
}


class _Quiet(SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format: str, *args: object) -> None:
        _Quiet.requests.append(self.path)


@pytest.fixture()
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """(base URL, served folder)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()
    _Quiet.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/mirror", served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _zip(path: Path, files: dict[str, str], prefix: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(prefix + name, text)
    return path


def _leftovers(data_dir: Path) -> list[str]:
    return sorted(p.name for p in data_dir.iterdir()) if data_dir.exists() else []


def test_source_urls_mirror() -> None:
    assert source_urls("ml-100k") == ["https://files.grouplens.org/datasets/movielens/ml-100k.zip"]
    assert source_urls("lastfm-2k", mirror="http://127.0.0.1:9/m/") == ["http://127.0.0.1:9/m/hetrec2011-lastfm-2k.zip"]
    assert [u.rsplit("/", 1)[1] for u in source_urls("kg-lastfm")] == ["kg.txt", "item_index2entity_id.txt",
                                                                      "user_artists.dat"]


def test_download_zip_with_top_folder(server: tuple[str, Path], tmp_path: Path) -> None:
    url, served = server
    _zip(served / "mirror" / "ml-100k.zip", ML100K, prefix="ml-100k/")
    data = tmp_path / "data"
    seen: list[tuple[str, int, int | None]] = []
    folder = download("ml-100k", data, mirror=url, progress=lambda *a: seen.append(a))
    assert folder == data / "ml-100k"
    assert sorted(p.name for p in folder.iterdir()) == sorted(ML100K)
    assert _leftovers(data) == [".cache", "ml-100k"]  # no temp folders
    assert (data / ".cache" / "ml-100k.zip").is_file()
    assert seen and seen[-1][0] == "ml-100k.zip" and seen[-1][1] == seen[-1][2] > 0
    assert load("ml-100k", data_dir=data).n_interactions == 2

    n = len(_Quiet.requests)
    assert download("ml-100k", data, mirror=url) == folder  # already there: no request
    assert len(_Quiet.requests) == n


def test_download_zip_with_files_at_root(server: tuple[str, Path], tmp_path: Path) -> None:
    url, served = server
    _zip(served / "mirror" / "hetrec2011-lastfm-2k.zip", LASTFM)
    folder = download("lastfm-2k", tmp_path / "data", mirror=url)
    assert folder == tmp_path / "data" / "hetrec2011-lastfm-2k"
    assert load("lastfm-2k", data_dir=tmp_path / "data").n_interactions == 1


def test_force_replaces_folder(server: tuple[str, Path], tmp_path: Path) -> None:
    url, served = server
    data = tmp_path / "data"
    (data / "ml-100k").mkdir(parents=True)
    (data / "ml-100k" / "stale.txt").write_text("x")
    _zip(served / "mirror" / "ml-100k.zip", ML100K, prefix="ml-100k/")
    download("ml-100k", data, mirror=url)  # incomplete folder: downloads even without force
    assert not (data / "ml-100k" / "stale.txt").exists()
    (data / "ml-100k" / "stale.txt").write_text("x")
    download("ml-100k", data, mirror=url, force=True)
    assert not (data / "ml-100k" / "stale.txt").exists()
    assert _leftovers(data) == [".cache", "ml-100k"]


def test_404_leaves_nothing(server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = server
    data = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"HTTP 404.*place the files by hand.*ml-100k"):
        download("ml-100k", data, mirror=url)
    assert not data.exists()
    data.mkdir()
    with pytest.raises(DownloadError, match="HTTP 404"):
        download("ml-100k", data, mirror=url)
    assert _leftovers(data) == []


def test_no_network_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with pytest.raises(DownloadError, match=r"could not reach .*no network.*by hand"):
        download("ml-100k", tmp_path / "data", mirror="http://127.0.0.1:1/x")
    assert not (tmp_path / "data").exists()


def test_bad_zip_and_incomplete_zip(server: tuple[str, Path], tmp_path: Path) -> None:
    url, served = server
    data = tmp_path / "data"
    (served / "mirror").mkdir()
    (served / "mirror" / "ml-100k.zip").write_bytes(b"not a zip")
    with pytest.raises(DownloadError, match="not a valid zip archive"):
        download("ml-100k", data, mirror=url)
    assert not data.exists()
    _zip(served / "mirror" / "ml-100k.zip", {"u.data": "1\t1\t1\t1\n"}, prefix="ml-100k/")
    with pytest.raises(DownloadError, match=r"lacks \['u\.item', 'u\.user', 'u\.genre'\]"):
        download("ml-100k", data, mirror=url)
    assert _leftovers(data) == [".cache"]  # the archive stays cached; no partial folder


def test_raw_files_checked_by_sha256(server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, served = server
    (served / "mirror").mkdir()
    for name, text in KG.items():
        (served / "mirror" / name).write_text(text)
    data = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"kg\.txt from .* has sha256 .* expected f62bbc8f"):
        download("kg-lastfm", data, mirror=url)  # the fake files do not match the real checksums
    assert not data.exists()

    sums = {n: hashlib.sha256(t.encode()).hexdigest() for n, t in KG.items()}
    monkeypatch.setitem(dl.SOURCES, "kg-lastfm", Source(dl.SOURCES["kg-lastfm"].urls, kind="files", sha256=sums))
    folder = download("kg-lastfm", data, mirror=url)
    assert folder == data / "kg-lastfm-kgcn" and sorted(p.name for p in folder.iterdir()) == sorted(KG)
    assert load("kg-lastfm", data_dir=data).n_interactions == 1


def test_unknown_name_and_no_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FUSIONREC_DATA", raising=False)
    with pytest.raises(UnknownNameError, match="known datasets: kg-lastfm, lastfm-2k"):
        download("ml-1m", "/tmp")
    with pytest.raises(DataError, match="needs a data directory.*--data-dir.*FUSIONREC_DATA"):
        download("ml-100k", None)
