"""Inputs anywhere: globs, directories as Spark writes them, file:// and memory:// URLs, a real
web server on loopback (fsspec's http filesystem), and the CLI taking all of them."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import shutil
import threading
import uuid

import fsspec
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from alerts.samples import real_avro_files, tar_gz
from brightscan.alerts import Alert, Rejection, iter_input_files, read_alerts
from brightscan.cli.main import app
from brightscan.errors import InputError


@pytest.fixture
def avro_files(real_avro_dir):
    return real_avro_files(real_avro_dir)[:4]


@pytest.fixture
def memory_root():
    """A fresh folder of fsspec's in-memory filesystem, removed afterwards."""
    fs = fsspec.filesystem("memory")
    root = f"/brightscan-test-{uuid.uuid4().hex}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def candids(items) -> list[int]:
    assert all(isinstance(i, Alert) for i in items), [i for i in items if isinstance(i, Rejection)]
    return [i.candid for i in items]


def test_glob_patterns(tmp_path, avro_files):
    (tmp_path / "n1").mkdir()
    (tmp_path / "n2" / "deep").mkdir(parents=True)
    targets = [tmp_path / "n1" / "a.avro", tmp_path / "n2" / "b.avro", tmp_path / "n2" / "deep" / "c.avro"]
    for source, target in zip(avro_files, targets):
        shutil.copy(source, target)
    (tmp_path / "n1" / "notes.txt").write_text("skipped")
    assert list(iter_input_files(str(tmp_path / "n*" / "*.avro"))) == targets[:2]
    assert list(iter_input_files(str(tmp_path / "**" / "*.avro"))) == sorted(targets)
    assert list(iter_input_files(str(tmp_path / "n?"))) == targets  # matched directories are walked
    with pytest.raises(InputError, match="matches no alert file"):
        list(read_alerts(str(tmp_path / "*.parquet")))
    with pytest.raises(InputError, match="matches no alert file"):
        list(read_alerts(str(tmp_path / "n1" / "*.txt")))


def test_spark_output_directory_is_read_once(tmp_path, avro_files):
    """_SUCCESS, _temporary/ (a failed task's partial output) and .crc files are not alerts."""
    out = tmp_path / "export.avro"  # Spark names the output directory like a file
    (out / "_temporary" / "0").mkdir(parents=True)
    for n, source in enumerate(avro_files[:2]):
        shutil.copy(source, out / f"part-0000{n}-abc.avro")
        shutil.copy(source, out / "_temporary" / "0" / f"part-0000{n}-abc.avro")
        (out / f".part-0000{n}-abc.avro.crc").write_bytes(b"crc")
    shutil.copy(avro_files[2], out / ".hidden.avro")
    (out / "_SUCCESS").write_bytes(b"")
    assert list(iter_input_files(out)) == [out / "part-00000-abc.avro", out / "part-00001-abc.avro"]
    assert len(list(read_alerts(out))) == 2


def test_file_urls_are_local_paths(tmp_path, avro_files):
    target = tmp_path / "x.avro"
    shutil.copy(avro_files[0], target)
    assert [a.source for a in read_alerts(f"file://{target}")] == [str(target)]
    assert list(iter_input_files(f"file://{tmp_path}")) == [target]


def test_memory_urls_every_container(memory_root, avro_files, real_parquet_dir):
    fs, root = memory_root
    parquet = sorted(real_parquet_dir.glob("*.parquet"))[0]
    fs.pipe(f"{root}/night/b.avro", avro_files[1].read_bytes())
    fs.pipe(f"{root}/night/a.avro", avro_files[0].read_bytes())
    fs.pipe(f"{root}/night/sub/archive.tar.gz",
            tar_gz([(f"x/{p.name}", p.read_bytes()) for p in avro_files[2:4]]))
    fs.pipe(f"{root}/night/_SUCCESS", b"")
    fs.pipe(f"{root}/fink/part-0.parquet", parquet.read_bytes())
    url = f"memory://{root}"
    expected = [f"{url}/night/a.avro", f"{url}/night/b.avro", f"{url}/night/sub/archive.tar.gz"]
    assert list(iter_input_files(f"{url}/night")) == expected
    alerts = list(read_alerts(f"{url}/night"))
    assert candids(alerts) == [Alert_candid(p) for p in avro_files]
    assert alerts[0].source == f"{url}/night/a.avro"
    assert alerts[3].source == f"{url}/night/sub/archive.tar.gz::x/{avro_files[3].name}"
    rows = list(read_alerts(f"{url}/fink/part-0.parquet"))
    assert candids(rows) == pq.read_table(parquet, columns=["candid"]).column("candid").to_pylist()
    assert rows[1].source == f"{url}/fink/part-0.parquet#1"
    assert list(iter_input_files(f"{url}/*/*.avro")) == expected[:2]


def Alert_candid(path) -> int:  # noqa: N802 - reads as "the Alert's candid"
    (alert,) = list(read_alerts(path))
    return alert.candid


def test_url_usage_errors(memory_root):
    fs, root = memory_root
    with pytest.raises(InputError, match="does not exist"):
        list(read_alerts(f"memory://{root}/nothing.avro"))
    with pytest.raises(InputError, match="matches no alert file"):
        list(read_alerts(f"memory://{root}/*.avro"))
    fs.pipe(f"{root}/x.json", b"{}")
    with pytest.raises(InputError, match="cannot read this kind of file"):
        list(read_alerts(f"memory://{root}/x.json"))
    with pytest.raises(InputError, match="cannot read nope://"):
        list(read_alerts("nope://bucket/x.avro"))


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed here")
def test_a_missing_remote_library_names_the_extra():
    with pytest.raises(InputError, match=r"brightscan\[remote\]"):
        list(read_alerts("gs://bucket/night/*.avro"))


@pytest.fixture
def web_root(tmp_path):
    """A real HTTP server on loopback serving ``tmp_path/www``."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.handle_error = lambda request, address: None  # a client closing early is not news
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_https_style_urls_through_a_loopback_web_server(web_root, avro_files, real_parquet_dir):
    pytest.importorskip("aiohttp", reason="fsspec's http filesystem needs aiohttp (the test extra has it)")
    www, base = web_root
    shutil.copy(avro_files[0], www / "a.avro")
    parquet = sorted(real_parquet_dir.glob("*.parquet"))[0]
    shutil.copy(parquet, www / "alerts.parquet")
    (www / "night.tar.gz").write_bytes(tar_gz([(p.name, p.read_bytes()) for p in avro_files[1:3]]))
    items = list(read_alerts([f"{base}/a.avro", f"{base}/night.tar.gz", f"{base}/alerts.parquet"]))
    n_rows = pq.ParquetFile(parquet).metadata.num_rows
    assert len(candids(items)) == 3 + n_rows
    assert items[0].source == f"{base}/a.avro" and items[3].source == f"{base}/alerts.parquet#0"
    with pytest.raises(InputError, match="does not exist"):
        list(read_alerts(f"{base}/missing.avro"))


def test_cli_takes_globs_and_urls(tmp_path, memory_root, avro_files):
    fs, root = memory_root
    for path in avro_files[:2]:
        fs.pipe(f"{root}/{path.name}", path.read_bytes())
    for path in avro_files[2:4]:
        shutil.copy(path, tmp_path / path.name)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["preprocess", f"memory://{root}/*.avro", str(tmp_path / "*.avro"),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    sources = pq.read_table(out / "alerts.parquet").column("source").to_pylist()
    rejected = pq.read_table(out / "rejected.parquet").column("source").to_pylist()
    assert sorted(sources + rejected) == sorted([f"memory://{root}/{p.name}" for p in avro_files[:2]]
                                                + [str(tmp_path / p.name) for p in avro_files[2:4]])
    result = CliRunner().invoke(app, ["preprocess", f"memory://{root}/none*.avro", "--out", str(out)])
    assert result.exit_code == 2 and "matches no alert file" in result.output


class _CutShort(http.server.BaseHTTPRequestHandler):
    """Promises the whole file, sends half of it, hangs up (a dropped connection)."""

    payload = b""

    def do_HEAD(self):  # noqa: N802 - the http.server naming
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()

    def do_GET(self):  # noqa: N802
        self.do_HEAD()
        self.wfile.write(self.payload[: len(self.payload) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_a_connection_dropped_mid_file_rejects_that_file_only(web_root, avro_files):
    pytest.importorskip("aiohttp", reason="fsspec's http filesystem needs aiohttp (the test extra has it)")
    www, base = web_root
    shutil.copy(avro_files[0], www / "good.avro")
    handler = type("Handler", (_CutShort,), {"payload": tar_gz([(p.name, p.read_bytes()) for p in avro_files])})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.handle_error = lambda request, address: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        broken = f"http://127.0.0.1:{server.server_address[1]}/night.tar.gz"
        items = list(read_alerts([broken, f"{base}/good.avro"]))
    finally:
        server.shutdown()
        server.server_close()
    # fsspec fetches the first block whole, so the break shows before any member is read
    (lost, alert) = items
    assert isinstance(alert, Alert) and alert.source == f"{base}/good.avro"
    assert isinstance(lost, Rejection) and lost.source == broken
    assert lost.reason.startswith("reading failed after 0 item(s): ") and "content length" in lost.reason


def test_a_remote_spark_output_directory_named_like_a_file(memory_root, avro_files):
    fs, root = memory_root
    fs.pipe(f"{root}/export.avro/part-00000-c000.avro", avro_files[0].read_bytes())
    fs.pipe(f"{root}/export.avro/_SUCCESS", b"")
    (alert,) = list(read_alerts(f"memory://{root}/export.avro"))
    assert alert.source == f"memory://{root}/export.avro/part-00000-c000.avro"
