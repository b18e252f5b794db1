"""Ingest from object storage: a real S3-compatible server (moto in server mode) on 127.0.0.1, real git and DVC.

The server checks credentials (INITIAL_NO_AUTH_ACTION_COUNT: the first requests create an IAM user and its key,
every later one must be signed with that key), so a wrong secret is refused as by AWS.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, REPO, dvc, git, mlp, snapshot
from test_errors import assert_one_line_error
from test_repro import STAGES, outcomes

boto3 = pytest.importorskip("boto3")  # comes with moto[server], in the test extra

BUCKET = "mlp-data"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """moto_server on 127.0.0.1 (stopped at the end), with an IAM user's key and a bucket: {endpoint, key, secret}."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="bootstrap",
                           aws_secret_access_key="bootstrap")
        iam.create_user(UserName="mlp")
        iam.put_user_policy(UserName="mlp", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="mlp")["AccessKey"]
        server = {"endpoint": endpoint, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
        client(server).create_bucket(Bucket=BUCKET)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def client(server: dict):
    return boto3.client("s3", endpoint_url=server["endpoint"], region_name=REGION,
                        aws_access_key_id=server["key"], aws_secret_access_key=server["secret"])


@pytest.fixture
def s3(s3_server: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The server's endpoint and credentials in this test's environment (what the mlp and dvc commands see)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["endpoint"])
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret"])
    return s3_server


def churn_csv(rows: int) -> bytes:
    """The bundled churn sample (seeded) as CSV bytes."""
    import tempfile

    from mlp.samples import write_sample

    with tempfile.TemporaryDirectory() as tmp:
        write_sample("churn", Path(tmp) / "churn.csv", rows=rows)
        return (Path(tmp) / "churn.csv").read_bytes()


def ingest_source(root: Path) -> dict:
    import pyarrow.parquet as pq

    metadata = pq.read_schema(root / "data/interim/ingested.parquet").metadata
    return json.loads(metadata[b"mlp.ingest"])["source"]


# --- pure ------------------------------------------------------------------------------------------------------

def test_ingest_from_url_makes_ingest_always_run_without_the_raw_data_dependency() -> None:
    import yaml

    from mlp.scaffold import _ingest_from_url

    text = (REPO / "dvc.yaml").read_text()
    stages = yaml.safe_load(_ingest_from_url(text))["stages"]
    before = yaml.safe_load(text)["stages"]
    assert stages["ingest"]["always_changed"] is True
    assert "data/raw" not in stages["ingest"]["deps"]
    assert stages["ingest"]["deps"] == [d for d in before["ingest"]["deps"] if d != "data/raw"]
    assert {k: v for k, v in stages.items() if k != "ingest"} == {k: v for k, v in before.items() if k != "ingest"}


@pytest.mark.parametrize("url, parsed", [
    ("s3://bucket/churn.csv", ("s3", "bucket", "churn.csv")),
    ("gs://bucket/a/b/data.parquet", ("gs", "bucket", "a/b/data.parquet")),
    ("az://container/x.jsonl.gz", ("az", "container", "x.jsonl.gz")),
])
def test_object_urls_are_parsed(url: str, parsed: tuple) -> None:
    from mlp.object_source import is_object_url
    from mlp.predict_files import load_sources

    assert is_object_url(url)
    assert load_sources(None).object_store.parse(url) == parsed


@pytest.mark.parametrize("url, words", [
    ("s3:/bucket/churn.csv", "not an object URL"),
    ("s3://bucket", "not an object URL"),
    ("s3://bucket/folder/", "not an object URL"),
    ("s3://me:hunter2secret@bucket/churn.csv", "holds credentials"),
    ("s3://bucket/churn.csv?secret_key=hunter2secret", "holds credentials"),
])
def test_malformed_urls_say_what_a_good_one_looks_like_without_the_secret(url: str, words: str) -> None:
    from mlp.predict_files import load_sources

    with pytest.raises(SystemExit) as exc:
        load_sources(None).object_store.parse(url)
    assert words in str(exc.value.code)
    assert "hunter2secret" not in str(exc.value.code)


def test_azure_without_an_account_name_says_which_variable_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlp.predict_files import load_sources

    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
    with pytest.raises(SystemExit) as exc:
        load_sources(None).object_store.filesystem("az", "container")
    assert "AZURE_STORAGE_ACCOUNT_NAME" in str(exc.value.code)


# --- a real server -------------------------------------------------------------------------------------------

def test_init_from_a_bucket_and_rerun_only_when_the_object_changes(s3: dict, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = churn_csv(400)
    client(s3).put_object(Bucket=BUCKET, Key="churn.csv", Body=data)
    url = f"s3://{BUCKET}/churn.csv"
    mlp(tmp_path, "init", "proj", "--data", url, "--target", "churned", "--ci", "none", check=True)
    root = tmp_path / "proj"
    assert not (root / "data/raw").exists()  # the object stays in its bucket, nothing `dvc add`ed
    assert f"path: {url}" in (root / "params.yaml").read_text()

    # Credentials from the project's .env (git-ignored) rather than the environment.
    (root / ".env").write_text(f"AWS_ACCESS_KEY_ID={s3['key']}\nAWS_SECRET_ACCESS_KEY={s3['secret']}\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert git(root, "status", "--porcelain") == ""  # .env is ignored
    first = mlp(root, "repro", check=True)
    assert outcomes(first.out) == dict.fromkeys(STAGES, "ran")
    import hashlib

    assert ingest_source(root) == {"format": "csv", "path": url, "size": len(data),
                                   "md5": hashlib.md5(data).hexdigest()}
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first run")

    # The same object: ingest runs (it cannot know without reading), nothing after it, nothing changes.
    again = mlp(root, "repro", check=True)
    assert outcomes(again.out) == {"ingest": "ran", **dict.fromkeys(STAGES[1:], "skipped")}
    assert git(root, "status", "--porcelain") == ""
    assert mlp(root, "check").code == 0

    # The same bytes uploaded again (a new object, a new modification time): still only ingest.
    client(s3).put_object(Bucket=BUCKET, Key="churn.csv", Body=data)
    same = mlp(root, "repro", check=True)
    assert outcomes(same.out) == {"ingest": "ran", **dict.fromkeys(STAGES[1:], "skipped")}
    assert git(root, "status", "--porcelain") == ""

    # Other rows: everything reruns; stock `dvc repro` agrees that nothing more is to do but ingest.
    fewer = b"".join(data.splitlines(keepends=True)[:351])
    client(s3).put_object(Bucket=BUCKET, Key="churn.csv", Body=fewer)
    changed = mlp(root, "repro", check=True)
    assert outcomes(changed.out) == dict.fromkeys(STAGES, "ran")
    assert ingest_source(root)["size"] == len(fewer)
    stock = dvc(root, "repro")
    assert "Running stage 'ingest'" in stock.out and "Running stage 'validate'" not in stock.out, stock.out

    # `mlp predict` scores an object too, read by the same code.
    client(s3).put_object(Bucket=BUCKET, Key="new/customers.csv", Body=fewer)
    scored = mlp(root, "predict", f"s3://{BUCKET}/new/customers.csv", "scores.csv", check=True)
    assert f"350 of 350 rows of s3://{BUCKET}/new/customers.csv" in scored.err
    assert len((root / "scores.csv").read_text().splitlines()) == 351

    # No secret anywhere but the ignored .env: not in the files, the DVC cache, nor git's history.
    secret = s3["secret"].encode()
    leaks = [p for p in root.rglob("*") if p.is_file() and p.name != ".env" and secret in p.read_bytes()]
    assert leaks == []
    assert s3["secret"] not in git(root, "log", "-p", "--all")
    assert s3["secret"] not in first.out + first.err + changed.out + changed.err


@pytest.mark.parametrize("url, env, words", [
    (f"s3://no-such-bucket/churn.csv", {}, ["bucket 'no-such-bucket'", "does not exist"]),
    (f"s3://{BUCKET}/nope.csv", {}, ["no object 'nope.csv'"]),
    (f"s3://{BUCKET}/churn.csv", {"AWS_SECRET_ACCESS_KEY": "wrong-secret-0123456789"}, ["denied", "AWS_SECRET_ACCESS_KEY"]),
    (f"s3://{BUCKET}/churn.csv", {"AWS_ENDPOINT_URL": "http://127.0.0.1:{closed}"}, ["cannot reach", "AWS_ENDPOINT_URL"]),
    ("s3:/mlp-data/churn.csv", {}, ["not an object URL", "s3://my-bucket/"]),
    (f"s3://me:hunter2secret@{BUCKET}/churn.csv", {}, ["holds credentials"]),
])
def test_bad_sources_stop_init_with_one_line_and_leave_nothing(s3: dict, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                url: str, env: dict, words: list) -> None:
    client(s3).put_object(Bucket=BUCKET, Key="churn.csv", Body=churn_csv(100))
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(closed=free_port()))
    before = snapshot(tmp_path)
    result = mlp(tmp_path, "init", "proj", "--data", url, "--target", "churned")
    assert_one_line_error(result, *words)
    assert len(result.err.strip().splitlines()) == 1
    for secret in (s3["secret"], "wrong-secret-0123456789", "hunter2secret"):
        assert secret not in result.err + result.out
    assert snapshot(tmp_path) == before


def test_an_object_gone_after_init_fails_repro_in_one_line(s3: dict, tmp_path: Path) -> None:
    client(s3).put_object(Bucket=BUCKET, Key="gone.csv", Body=churn_csv(300))
    mlp(tmp_path, "init", "proj", "--data", f"s3://{BUCKET}/gone.csv", "--target", "churned", "--ci", "none",
        check=True)
    root = tmp_path / "proj"
    client(s3).delete_object(Bucket=BUCKET, Key="gone.csv")
    before = snapshot(root)
    result = mlp(root, "repro")
    assert_one_line_error(result, f"s3://{BUCKET}/gone.csv not found")
    predicted = mlp(root, "predict", f"s3://{BUCKET}/gone.csv", "scores.csv")
    assert_one_line_error(predicted, f"s3://{BUCKET}/gone.csv not found")
    assert snapshot(root) == before
