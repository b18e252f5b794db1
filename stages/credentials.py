"""Credentials for ingest's database and object-storage sources: only from the environment or `.env`.

A password, key or token never goes into params.yaml, dvc.lock, a log, a report or an error message:
- load_env() reads the project's `.env` (KEY=VALUE lines; `mlp init` git-ignores it) into os.environ, where
  a variable is not already set: the environment wins, so CI can pass its secrets as variables.
- split_password(url) takes a password out of a URL (postgresql://me:secret@host/db -> postgresql://me@host/db,
  "secret"), for the code that must keep URLs out of files.
- redact(text) replaces every secret it knows of in `text` by ***: the values of environment variables whose
  names say they are secret (PASSWORD, SECRET, TOKEN, KEY, CREDENTIAL), and the password of any URL in it.
  Every message a source stage prints goes through it.
"""
import os
import re
from urllib.parse import unquote, urlsplit, urlunsplit

ENV_FILE = ".env"
SECRET_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL")
MASK = "***"
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*):([^@/\s]+)@", re.IGNORECASE)
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_env(text):
    """{name: value} of a .env file's text: KEY=VALUE lines, optional `export`, values optionally quoted;
    blank lines and # comments skipped."""
    values = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        name, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()  # an unquoted value ends at a comment
        values[name] = value
    return values


def load_env(path=ENV_FILE):
    """Set the variables of `path` (if it exists) that the environment does not already have; return their names."""
    try:
        with open(path, encoding="utf-8") as f:
            values = parse_env(f.read())
    except FileNotFoundError:
        return []
    added = [name for name in values if name not in os.environ]
    for name in added:
        os.environ[name] = values[name]
    return added


def split_password(url):
    """(the URL without its password, the password (decoded) or None)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = (parts.username or "") + "@" + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc)), unquote(parts.password)


def secret_values(environ=None):
    """The values of the environment variables whose names say they hold a secret (4 characters or more, so
    that a short value does not blank out ordinary words)."""
    environ = os.environ if environ is None else environ
    return {value for name, value in environ.items()
            if any(word in name.upper() for word in SECRET_WORDS) and len(value) >= 4}


def redact(text, extra=()):
    """`text` with every known secret (and any URL's password) replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", str(text))
    for secret in sorted(secret_values() | {s for s in extra if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
