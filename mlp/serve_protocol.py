"""The request bodies `mlp serve` accepts, read without a model layer (no pydantic on the request path), and
their OpenAPI description built from the data contract.

POST /predict:      application/json {"records": [{column: value, ...}, ...]}
POST /invocations:  MLflow's scoring protocol
  application/json with exactly one of
    dataframe_split    {"columns": [...], "data": [[...], ...]} (an "index" is ignored)
    dataframe_records  [{column: value, ...}, ...]
    instances, inputs  [{column: value, ...}, ...], or {column: [values...]} (columnar), or {column: value} (one row)
  and optionally "params" (ignored: the model takes none);
  text/csv: a header row, then one row per record; an empty field is a missing value, the rest are text, read with
  the contract's rules like any text (so "3.5" is a number for a numeric column).
Every refusal is a Rejected: the HTTP status, a one-line message ("detail") and, for the contract, the problems.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

MAX_PROBLEMS = 100  # problems listed in one 422 answer (the message counts them all)
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class Rejected(Exception):
    """A request refused with a 4xx: `reason` labels it in /metrics."""

    def __init__(self, status: int, message: str, problems: list[dict[str, Any]] | None = None,
                 reason: str = "invalid_request", close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems
        self.reason = reason
        self.close = close  # the body was not read to its end: the connection cannot be reused

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"detail": self.message}
        if self.problems is not None:
            out["problems"] = self.problems
        return out


def media_type(header: str | None) -> str:
    """The media type of a Content-Type header, lower case, without parameters ("" when absent)."""
    return (header or "").split(";", 1)[0].strip().lower()


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value (send null for a missing value)")


def parse_json(body: bytes) -> Any:
    """The body as JSON, or Rejected(400): not UTF-8, not JSON, NaN / Infinity, nested too deeply."""
    if not body.strip():
        raise Rejected(400, "the body is empty; send a JSON object", reason="malformed_json")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise Rejected(400, "the body is not valid JSON: it nests too deeply", reason="malformed_json") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN, an integer of over 4300 digits
        raise Rejected(400, f"the body is not valid JSON: {exc}", reason="malformed_json") from None


def _require_json(ctype: str, route: str, csv_too: bool = False) -> None:
    if ctype != "application/json" and not (csv_too and ctype == "text/csv"):
        allowed = "application/json or text/csv" if csv_too else "application/json"
        got = f"Content-Type {ctype!r}" if ctype else "no Content-Type"
        raise Rejected(415, f"{route} takes {allowed}, this request has {got}; e.g. curl -H 'Content-Type: "
                            "application/json'", reason="content_type")


def _object(body: bytes) -> dict[str, Any]:
    value = parse_json(body)
    if not isinstance(value, dict):
        raise Rejected(400, f"the body is a JSON {type(value).__name__}; send a JSON object", reason="malformed_json")
    return value


def _records(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise Rejected(422, f"{where} must be a list of records (objects of column: value)")
    if not value:
        raise Rejected(422, f"{where} is empty; send at least one record")
    for i, record in enumerate(value):
        if not isinstance(record, dict):
            raise Rejected(422, f"{where}[{i}] is a {type(record).__name__}, not an object of column: value")
    return value


def predict_records(ctype: str, body: bytes) -> tuple[list[dict[str, Any]], str]:
    """(records, where they sit in the body) of a /predict request."""
    _require_json(ctype, "/predict")
    value = _object(body)
    if "records" not in value:
        raise Rejected(422, f"the body has no \"records\" (it has: {', '.join(map(repr, value)) or 'nothing'}); "
                            "send {\"records\": [{column: value, ...}]}")
    return _records(value["records"], "records"), "records"


def invocation_records(ctype: str, body: bytes) -> tuple[list[dict[str, Any]], str]:
    """(records, where) of an /invocations request (MLflow's scoring protocol)."""
    _require_json(ctype, "/invocations", csv_too=True)
    if ctype == "text/csv":
        return csv_records(body), "rows"
    value = _object(body)
    keys = [k for k in MLFLOW_KEYS if k in value]
    others = [k for k in value if k not in MLFLOW_KEYS and k != "params"]
    if len(keys) != 1 or others:
        raise Rejected(422, f"the body must hold exactly one of {', '.join(MLFLOW_KEYS)} (and optionally params); "
                            f"it has: {', '.join(map(repr, value)) or 'nothing'}")
    key = keys[0]
    data = value[key]
    if key == "dataframe_split":
        return _split_records(data), "dataframe_split.data"
    if key in ("instances", "inputs") and isinstance(data, dict):
        return _columnar_records(data, key), key
    return _records(data, key), key


def _split_records(split: Any) -> list[dict[str, Any]]:
    if not isinstance(split, dict) or not isinstance(split.get("columns"), list) or not isinstance(split.get("data"), list):
        raise Rejected(422, "dataframe_split must be {\"columns\": [names], \"data\": [[values], ...]}")
    columns = split["columns"]
    if not all(isinstance(c, str) for c in columns):
        raise Rejected(422, "dataframe_split.columns must be column names (strings)")
    if not split["data"]:
        raise Rejected(422, "dataframe_split.data is empty; send at least one row")
    for i, row in enumerate(split["data"]):
        if not isinstance(row, list) or len(row) != len(columns):
            raise Rejected(422, f"dataframe_split.data[{i}] must be a list of {len(columns)} values, one per column")
    return [dict(zip(columns, row)) for row in split["data"]]


def _columnar_records(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    lists = [isinstance(v, list) for v in data.values()]
    if data and not any(lists):
        return [data]  # one row: {column: value}
    lengths = {len(v) for v in data.values() if isinstance(v, list)}
    if not data or not all(lists) or len(lengths) != 1 or 0 in lengths:
        raise Rejected(422, f"{key} as an object must map each column to a list of values, all of one length")
    names = list(data)
    return [dict(zip(names, row)) for row in zip(*data.values())]


def csv_records(body: bytes) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except UnicodeDecodeError as exc:
        raise Rejected(400, f"the CSV is not UTF-8: {exc}", reason="malformed_csv") from None
    except csv.Error as exc:
        raise Rejected(400, f"the CSV cannot be read: {exc}", reason="malformed_csv") from None
    rows = [row for row in rows if row]  # blank lines
    if len(rows) < 2:
        raise Rejected(422, "the CSV needs a header row and at least one row of values")
    header = rows[0]
    records = []
    for i, row in enumerate(rows[1:], start=1):
        if len(row) != len(header):
            raise Rejected(422, f"CSV row {i} has {len(row)} fields, the header {len(header)}")
        records.append({name: (value if value != "" else None) for name, value in zip(header, row)})
    return records


# ---------------------------------------------------------------------------------------------
# OpenAPI: the request model, from the contract (the handlers read the body themselves, for speed)

def _value_schema(spec: dict[str, Any]) -> dict[str, Any]:
    kind = spec.get("kind", "numeric")
    if kind == "categorical" and spec.get("categories"):
        schema: dict[str, Any] = {"enum": list(spec["categories"])}
    else:
        schema = {"numeric": {"type": "number"}, "integer": {"type": "integer"}, "boolean": {"type": "boolean"},
                  "datetime": {"type": "string", "format": "date-time"}}.get(kind, {"type": "string"})
        for bound, key in (("min", "minimum"), ("max", "maximum")):
            if spec.get(bound) is not None and kind in ("numeric", "integer"):
                schema[key] = spec[bound]
    if spec.get("nullable", True) is not False:
        schema = {"anyOf": [schema, {"type": "null"}]}
    notes = [f"kind {kind}"] + ([f"role {spec['role']}: not given to the model"] if spec.get("role") else [])
    if spec.get("reason"):
        notes.append(str(spec["reason"]))
    return {**schema, "description": "; ".join(notes)}


def request_schemas(columns: dict[str, dict[str, Any]], required: list[str], ignore: set[str],
                    max_records: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The openapi_extra of /predict and of /invocations: their request bodies, with the contract's columns."""
    record = {"title": "Record", "type": "object", "additionalProperties": True,
              "description": "One row: column -> value. Unknown columns are ignored (and said in warnings).",
              "properties": {name: _value_schema(spec) for name, spec in columns.items() if name not in ignore},
              "required": list(required)}
    records = {"type": "array", "items": record, "minItems": 1, "maxItems": max_records}
    predict = {"title": "PredictRequest", "type": "object", "required": ["records"],
               "properties": {"records": records}}
    split = {"type": "object", "required": ["columns", "data"],
             "properties": {"columns": {"type": "array", "items": {"type": "string"}},
                            "data": {"type": "array", "items": {"type": "array"}}}}
    columnar = {"type": "object", "additionalProperties": {"type": "array"}}
    mlflow = {"title": "InvocationsRequest", "description": "Exactly one of these keys (MLflow's scoring protocol).",
              "oneOf": [{"type": "object", "required": ["dataframe_split"], "properties": {"dataframe_split": split}},
                        {"type": "object", "required": ["dataframe_records"], "properties": {"dataframe_records": records}},
                        {"type": "object", "required": ["instances"],
                         "properties": {"instances": {"anyOf": [records, columnar]}}},
                        {"type": "object", "required": ["inputs"],
                         "properties": {"inputs": {"anyOf": [records, columnar]}}}]}
    csv_body = {"type": "string", "description": "A header row with the column names, then one row per record."}

    def body(content: dict[str, Any]) -> dict[str, Any]:
        return {"requestBody": {"required": True, "content": content}}

    return (body({"application/json": {"schema": predict}}),
            body({"application/json": {"schema": mlflow}, "text/csv": {"schema": csv_body}}))
