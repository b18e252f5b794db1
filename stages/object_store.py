"""Ingest from object storage: ingest.path may be s3://bucket/key, gs://bucket/key or az://container/key.

The object (CSV, Parquet or JSON lines, optionally .gz/.bz2/.zst/.lz4) is copied into a temporary folder and
read there by sources.py's own readers, so it is tidied exactly like a local file. The copy's size and MD5 go
into the output's mlp.ingest metadata (source.size, source.md5): DVC cannot hash an object in a bucket without
a plugin, so the ingest stage of such a project is `always_changed` (mlp init writes it so) and this is what
makes its output change when the object does. The same object gives the same bytes, and the stages after
ingest are skipped; another object gives another output, and they rerun.

Where the filesystems come from (pyarrow.fs, no other dependency):
- s3://  S3FileSystem. Credentials: the AWS SDK's own chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
         AWS_SESSION_TOKEN, AWS_PROFILE, ...). An S3-compatible server (MinIO, Ceph, moto): AWS_ENDPOINT_URL_S3
         or AWS_ENDPOINT_URL (pyarrow 26 does not read them itself: they are passed as endpoint_override).
         Region: AWS_REGION or AWS_DEFAULT_REGION, else asked of AWS for the bucket.
- gs://  GcsFileSystem, with Google's default credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud).
- az://  AzureFileSystem on the account AZURE_STORAGE_ACCOUNT_NAME, with AZURE_STORAGE_ACCOUNT_KEY or
         AZURE_STORAGE_SAS_TOKEN when set, else Azure's DefaultAzureCredential.
The project's .env is read first (credentials.load_env; the environment wins). Credentials never belong in
the URL: one with user:password@ or a query string is refused, and every message goes through redact().
"""
import contextlib
import hashlib
import json
import os
import posixpath
import tempfile
from urllib.parse import urlsplit

from common import fail
from credentials import load_env, redact

SCHEMES = ("s3", "gs", "az")
CHUNK = 1 << 20
EXAMPLE = "s3://my-bucket/data/churn.csv"


def is_object_url(path):
    """Whether ingest.path names object storage (s3:, gs: or az:, well formed or not)."""
    return isinstance(path, str) and path.split(":", 1)[0].lower() in SCHEMES and ":" in path


def parse(url):
    """(scheme, bucket, key) of an object URL; a malformed one stops with what a good one looks like."""
    parts = urlsplit(url)
    shown = redact(url.split("?", 1)[0]) + ("?..." if parts.query else "")  # a query may hold a key: never shown
    if "@" in parts.netloc or parts.query:
        fail(f"ingest.path {shown} holds credentials or options; give only scheme://bucket/key and put "
             "credentials in the environment or the project's .env (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...)")
    key = parts.path.lstrip("/")
    if parts.scheme not in SCHEMES or not url.startswith(f"{parts.scheme}://") or not parts.netloc \
            or not key or key.endswith("/") or parts.fragment:
        fail(f"ingest.path {shown} is not an object URL; write it like {EXAMPLE} (s3://, gs:// or az://, "
             "a bucket, then the object's key) in params.yaml")
    return parts.scheme, parts.netloc, key


def endpoint():
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def filesystem(scheme, bucket):
    """The pyarrow filesystem for `scheme`, configured from the environment (see the module's docstring)."""
    import pyarrow.fs as pafs

    if scheme == "s3":
        options = {"connect_timeout": 10, "request_timeout": 60,
                   "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3)}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if endpoint():
            options["endpoint_override"] = endpoint()
        elif not region:
            region = pafs.resolve_s3_region(bucket)
        if region:
            options["region"] = region
        return pafs.S3FileSystem(**options)
    if scheme == "gs":
        return pafs.GcsFileSystem()
    account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
    if not account:
        fail("az:// needs the storage account's name: set AZURE_STORAGE_ACCOUNT_NAME in the environment or .env")
    return pafs.AzureFileSystem(account, account_key=os.environ.get("AZURE_STORAGE_ACCOUNT_KEY") or None,
                                sas_token=os.environ.get("AZURE_STORAGE_SAS_TOKEN") or None)


def storage_failure(url, error):
    """Stop with a one-line message for the filesystem's error `error` on `url` (secrets redacted)."""
    text = " ".join(str(error).split())
    where = f"the endpoint {endpoint()}" if endpoint() else "the storage service"
    if any(word in text for word in ("ACCESS_DENIED", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                                     "403", "401", "credentials", "Unauthorized")):
        fail(redact(f"access to {url} was denied ({text[:200]}); check the credentials (AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY for s3://, in the environment or the project's .env) and the bucket's "
                    "permissions"))
    if any(word in text for word in ("NETWORK_CONNECTION", "curlCode", "Could not resolve", "Could not connect",
                                     "Connection refused", "timed out", "Timeout")):
        fail(redact(f"cannot reach {where} for {url} ({text[:200]}); check AWS_ENDPOINT_URL (for an S3-compatible "
                    "server) and the network"))
    fail(redact(f"cannot read {url}: {text[:300]}"))


def object_info(fs, url, bucket, key):
    """The object's FileInfo; a missing bucket or key, a folder or an empty object stops here."""
    import pyarrow.fs as pafs

    info = fs.get_file_info(f"{bucket}/{key}")
    if info.type == pafs.FileType.NotFound:
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            fail(f"bucket {bucket!r} of {url} does not exist (or these credentials cannot see it); "
                 "check ingest.path in params.yaml")
        fail(f"{url} not found: bucket {bucket!r} has no object {key!r}; check ingest.path in params.yaml")
    if info.type == pafs.FileType.Directory:
        fail(f"{url} is a folder; set ingest.path in params.yaml to one object (a CSV, Parquet or JSON lines file)")
    if info.size == 0:
        fail(f"{url} is empty (0 bytes); put the data in it or set ingest.path in params.yaml")
    return info


@contextlib.contextmanager
def local_copy(url):
    """Yield (path of a temporary copy of the object, {"size", "md5"} of its bytes); the copy is gone afterwards.
    The bytes are copied as stored (compressed ones stay compressed: the readers decompress by extension)."""
    scheme, bucket, key = parse(url)
    load_env()
    with tempfile.TemporaryDirectory(prefix="mlp-object-") as tmp:
        local = os.path.join(tmp, posixpath.basename(key))
        digest, size = hashlib.md5(), 0
        try:
            fs = filesystem(scheme, bucket)
            object_info(fs, url, bucket, key)
            with fs.open_input_stream(f"{bucket}/{key}", compression=None) as src, open(local, "wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
        except (OSError, ValueError) as e:  # pyarrow's errors are OSErrors (ArrowIOError) or ArrowInvalid
            storage_failure(url, e)
        yield local, {"size": size, "md5": digest.hexdigest()}


def read_source(params, reader):
    """What reader(params) (sources.read_source) returns for the object at params["path"], read from a local
    copy: its messages name the URL, and its mlp.ingest source says which bytes it read."""
    url = params["path"]
    with local_copy(url) as (local, version):
        try:
            table = reader({**params, "path": local})
        except SystemExit as e:
            raise SystemExit(redact(str(e.code).replace(local, url))) from None
    info = json.loads(table.schema.metadata[b"mlp.ingest"])
    info["source"].update(path=url, **version)
    return table.replace_schema_metadata({"mlp.ingest": json.dumps(info, sort_keys=True)})
