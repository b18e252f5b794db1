"""What each knob of params.yaml may be: its type and its allowed values or range.

One declaration, SPEC below, used in two places:
- each stage checks its own section when it starts (common.load_params), so a bad value stops the
  stage with one line naming the key, instead of a traceback from deep inside pandas or xgboost;
- mlp loads this file from the project (`mlp repro`, `-S key=value`), so a bad value is refused
  before anything runs, and params.yaml is left as it was.

To add a knob, add a line to its section, e.g. under "train":  "max_leaves": Integer(min=2),
Keys not declared here are not checked, nor are sections other than these (mlp checks gate: itself).
Checks across the keys of a section (tune.space as a whole, a grid's size against tune.trials) are
functions in SECTION_CHECKS, run after the section's keys.
Checks that need the data are made by the stage when it runs: a test_size row count against the
rows there are (split.py), the model kind against the task in schema.yaml (train.py).

Standard library only: stage scripts run under stock `dvc repro`, and mlp loads it on every run.
"""
import codecs
import math
import re

SEED = {"min": 0, "max": 2**32 - 1}  # what numpy and scikit-learn accept as a seed
# The parts features.py can take from a datetime column (keep in step with its DATETIME_PARTS).
DATETIME_PARTS = ("year", "quarter", "month", "day", "dayofweek", "dayofyear", "hour", "minute")
FORMATS = ("auto", "csv", "parquet", "jsonl", "sqlite")  # what sources.py reads
# The metrics tuning can optimize, evaluate.py's names by task (tune.metric: auto is roc_auc or rmse).
METRICS = {"classification": ("roc_auc", "log_loss", "accuracy", "balanced_accuracy", "f1_macro",
                              "precision_macro", "recall_macro"),
           "regression": ("rmse", "mae", "r2", "mape")}
# The train params each model kind reads: what its search space (tune.space.KIND) may vary. Not xgboost's
# n_estimators: early stopping on each fold chooses the number of trees.
MODEL_PARAMS = {"xgboost": ("max_depth", "learning_rate", "subsample", "colsample_bytree", "min_child_weight"),
                "random_forest": ("n_estimators", "max_depth"),
                "logistic": ("C",),
                "linear": ("C",)}
SPACE_VALUE = "a list of values (like [4, 6]) or a range (like {low: 0.01, high: 0.3, log: true})"


class Rule:
    """A check of one value: `test(value)` is true when the value is allowed, `expected` says in words
    what is allowed (it ends messages like "train.max_depth is 0; use a whole number >= 1")."""

    def __init__(self, test, expected, null=False):
        self.test = test
        self.null = null
        self.expected = f"null or {expected}" if null else expected

    def allows(self, value):
        if value is None:
            return self.null
        try:
            return bool(self.test(value))
        except (TypeError, ValueError, ArithmeticError):
            return False


def is_number(value):
    # YAML's true/false are Python bools, and bools are ints: they are not numbers here.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)  # no .nan or .inf


def is_whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


# --- the kinds of rule (for a check of your own: Rule(test, "what is allowed")) --------------------

class OneOf(Rule):
    def __init__(self, *choices, null=False):
        super().__init__(lambda v: isinstance(v, str) and v in choices, "one of " + ", ".join(choices), null)


class Boolean(Rule):
    def __init__(self):
        super().__init__(lambda v: isinstance(v, bool), "true or false")


class Text(Rule):
    """Text that is not empty; `what` names it in messages ("a table name")."""

    def __init__(self, what="text", null=False):
        super().__init__(lambda v: isinstance(v, str) and v.strip() != "", what, null)


class Integer(Rule):
    def __init__(self, min=None, max=None, null=False):
        bounds = [f"{sign} {bound}" for sign, bound in ((">=", min), ("<=", max)) if bound is not None]

        def test(v):
            return is_whole(v) and (min is None or v >= min) and (max is None or v <= max)

        super().__init__(test, " ".join(["a whole number", " and ".join(bounds)]).strip(), null)


class Number(Rule):
    """A number within optional bounds: min <= value, above < value, value <= max."""

    def __init__(self, min=None, above=None, max=None, null=False):
        bounds = [f"{sign} {bound}" for sign, bound in ((">=", min), (">", above), ("<=", max)) if bound is not None]

        def test(v):
            return (is_number(v) and (min is None or v >= min) and (above is None or v > above)
                    and (max is None or v <= max))

        super().__init__(test, " ".join(["a number", " and ".join(bounds)]).strip(), null)


class ListOf(Rule):
    """A list whose every item `item` allows (and with `unique`, no item twice)."""

    def __init__(self, item, what, unique=False):
        def test(v):
            return isinstance(v, list) and all(item.allows(x) for x in v) and (not unique or len(set(v)) == len(v))

        super().__init__(test, what)


def is_encoding(value):
    try:
        codec = codecs.lookup(value)
    except LookupError:
        return False
    return getattr(codec, "_is_text_encoding", True)  # not base64, rot13 and other byte transforms


def is_delimiter(value):
    return isinstance(value, str) and (len(value) == 1 or value in ("\\t", "tab"))


def is_test_size(value):
    return is_number(value) and (0 < value < 1 or (value >= 1 and (is_whole(value) or value.is_integer())))


def is_quantiles(value):
    return (isinstance(value, list) and len(value) == 2 and all(is_number(q) for q in value)
            and 0 <= value[0] < value[1] <= 1)


def is_memory(value):
    """A memory size: a number of bytes, or text like 2GB, 512MiB or auto (Dask's own spelling)."""
    if is_whole(value):
        return value > 0
    return isinstance(value, str) and (value == "auto" or MEMORY.fullmatch(value.strip()) is not None)


MEMORY = re.compile(r"(\d+(\.\d+)?)\s*(B|[kKMGT]i?B)")
MEMORY_UNITS = {"B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
                "KiB": 2**10, "kiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def memory_bytes(value):
    """dask.memory_limit as bytes (None for auto or null)."""
    if value in (None, "auto"):
        return None
    if is_whole(value):
        return value
    number, _, unit = MEMORY.fullmatch(value.strip()).groups()
    return int(float(number) * MEMORY_UNITS[unit])


# --- the declaration -------------------------------------------------------------------------------

# Keys at the top of params.yaml, outside any section.
TOP = {"engine": OneOf("pandas", "dask")}

SPEC = {
    "ingest": {
        "path": Text("a file path (like data/raw/churn.csv)"),
        "format": OneOf(*FORMATS),
        "delimiter": Rule(is_delimiter, "one character (like ',' or ';'; '\\t' for tab)", null=True),
        "encoding": Rule(is_encoding, "a known text encoding (like utf-8 or latin-1)"),
        "null_values": ListOf(Rule(lambda v: isinstance(v, str) or is_number(v), "text"),
                              'a list of text values (quote each, like ["", "NA"])'),
        "bad_lines": OneOf("skip", "fail"),
        "table": Text("a table name", null=True),
        "query": Text("a SELECT query", null=True),
    },
    "validate": {
        "policy": OneOf("fail", "drop", "warn"),
    },
    "dask": {
        "scheduler": Text("a Dask scheduler's address (like tcp://10.0.0.5:8786)", null=True),
        "workers": Integer(min=1),
        "threads": Integer(min=1),
        "memory_limit": Rule(is_memory, "a memory size per worker (like 2GB or 512MiB) or auto", null=True),
        "partition_rows": Integer(min=1000),
    },
    "prepare": {
        "drop_duplicates": Boolean(),
        "drop_missing_target": Boolean(),
        "max_missing_share": Number(min=0, max=1, null=True),
    },
    "split": {
        "test_size": Rule(is_test_size, "a share of the rows above 0 and below 1 (like 0.2), "
                                        "or a whole number of rows >= 1"),
        "seed": Integer(**SEED),
        "stratify": Boolean(),
        "time_column": Text("a datetime column's name", null=True),
    },
    "featurize": {
        "datetime_parts": ListOf(OneOf(*DATETIME_PARTS), unique=True,
                                 what=f"a list of distinct parts from {', '.join(DATETIME_PARTS)} "
                                      "(like [year, month]; [] for none)"),
        "impute": OneOf("median", "mean", "zero", "none"),
        "clip_quantiles": Rule(is_quantiles, "[lo, hi] with 0 <= lo < hi <= 1 (like [0.001, 0.999])", null=True),
        "max_categories": Integer(min=1),
        "category_encoding": OneOf("target", "frequency", "onehot"),
    },
    "train": {
        # Which model fits which task (schema.yaml's task) is checked by train.py.
        "model": OneOf("xgboost", "random_forest", "logistic", "linear"),
        "seed": Integer(**SEED),
        "n_estimators": Integer(min=1),
        "max_depth": Integer(min=1),
        "learning_rate": Number(above=0),
        "subsample": Number(above=0, max=1),
        "colsample_bytree": Number(above=0, max=1),
        "min_child_weight": Number(min=0),
        "C": Number(above=0),
    },
    "tune": {
        "enabled": Boolean(),
        "method": OneOf("tpe", "grid"),
        "trials": Integer(min=1),
        "folds": Integer(min=2),
        "metric": OneOf("auto", *METRICS["classification"], *METRICS["regression"]),
        "seed": Integer(**SEED),
        "early_stopping_rounds": Integer(min=1),
        "max_trees": Integer(min=1),
        # Each kind's params, and the size of a grid, are checked by tune_problems below.
        "space": Rule(lambda v: isinstance(v, dict) and len(v) > 0,
                      "model kinds, each with its params' values or ranges (like {xgboost: {max_depth: [4, 6]}})"),
    },
}


# --- tune.space: checks of the search space as a whole ---------------------------------------------

def is_range(value):
    return isinstance(value, dict)


def space_value_problem(name, value):
    """What is wrong with one param's search values (a list, or a range {low, high, log}), or None.
    Each value must be one train.NAME allows."""
    rule = SPEC["train"].get(name)
    if isinstance(value, list):
        if not value:
            return "use a list of at least one value, or a range"
        bad = [v for v in value if rule and not rule.allows(v)]
        return f"each value must be {rule.expected}" if bad else None
    if not is_range(value):
        return f"use {SPACE_VALUE}"
    unknown = sorted(set(value) - {"low", "high", "log"})
    if unknown or "low" not in value or "high" not in value:
        return f"a range has low, high and optionally log (like {{low: 0.01, high: 0.3, log: true}}), not {show(value)}"
    low, high, log = value["low"], value["high"], value.get("log", False)
    if rule and not (rule.allows(low) and rule.allows(high)):
        return f"low and high must each be {rule.expected}"
    if not (is_number(low) and is_number(high)):
        return "low and high must be numbers"
    if low > high:
        return f"low ({low}) is above high ({high})"
    if not isinstance(log, bool):
        return "log must be true or false"
    if log and low <= 0:
        return "a log range needs low > 0"
    return None


def grid_size(space):
    """The number of combinations of a grid: per model kind, the product of its lists' lengths."""
    total = 0
    for params in space.values():
        n = 1
        for values in (params or {}).values():
            n *= len(values) if isinstance(values, list) else 1
        total += n
    return total


def tune_problems(tune):
    """The search space's kinds and values, and with tune.method: grid, its lists against tune.trials."""
    space = tune.get("space")
    if not isinstance(space, dict):
        return []  # the space: rule has said what is wrong
    found = []
    for kind, params in space.items():
        if kind not in MODEL_PARAMS:
            found.append(f"tune.space.{kind} is not a model kind; use {', '.join(MODEL_PARAMS)}")
            continue
        if params is None:
            continue  # the kind with train.* values as they are
        if not isinstance(params, dict):
            found.append(f"tune.space.{kind} is {show(params)}; use its params' values or ranges "
                         f"(like {{{MODEL_PARAMS[kind][0]}: [...]}}), or {{}} for train.* as they are")
            continue
        for name, values in params.items():
            key = f"tune.space.{kind}.{name}"
            if kind == "xgboost" and name == "n_estimators":
                found.append(f"{key}: early stopping on each fold chooses xgboost's number of trees; "
                             "remove it (tune.max_trees caps the number)")
                continue
            if name not in MODEL_PARAMS[kind]:
                found.append(f"{key}: {kind} has no param {name} to tune; use {', '.join(MODEL_PARAMS[kind])}")
                continue
            problem = space_value_problem(name, values)
            if problem:
                found.append(f"{key} is {show(values)}; {problem}")
            elif tune.get("method") == "grid" and is_range(values):
                found.append(f"{key} is a range, and a grid takes lists of values; "
                             "use a list, or set tune.method to tpe")
    trials = tune.get("trials")
    if not found and tune.get("method") == "grid" and is_whole(trials) and trials > grid_size(space):
        found.append(f"tune.trials is {trials}, more than the {grid_size(space)} combinations of the grid in "
                     f"tune.space; set it to at most {grid_size(space)}, or add values")
    return found


SECTION_CHECKS = {"tune": tune_problems}


# --- the checker (pure: it reads no file) ----------------------------------------------------------

def check_value(key, value):
    """What `key` (dotted, like "featurize.impute") allows, if `value` is not allowed; else None.
    None too for a key that is not declared."""
    parts = key.split(".")
    if len(parts) == 4 and parts[:2] == ["tune", "space"]:  # one param's search values: tune.space.KIND.NAME
        problem = space_value_problem(parts[3], value)
        return None if problem is None else SPACE_VALUE if problem.startswith("use ") else f"{SPACE_VALUE}: {problem}"
    section, _, name = key.partition(".")
    rule = TOP.get(key) if not name else SPEC.get(section, {}).get(name)
    if rule is None or rule.allows(value):
        return None
    return rule.expected


def problems(params, sections=None):
    """Each declared knob of `params` (params.yaml as a dict) whose value is not allowed, in file order,
    as one line: "featurize.impute is 'avg'; use one of median, mean, zero, none".
    `sections`: check only these (a stage checks its own)."""
    found = []
    for key, rule in TOP.items():
        if key in params and not rule.allows(params[key]):
            found.append(f"{key} is {show(params[key])}; use {rule.expected}")
    for section, values in params.items():
        if section not in SPEC or (sections is not None and section not in sections) or values is None:
            continue
        if not isinstance(values, dict):
            found.append(f"{section} is {show(values)}; use a section of keys ({', '.join(SPEC[section])})")
            continue
        for name, value in values.items():
            expected = check_value(f"{section}.{name}", value)
            if expected:
                found.append(f"{section}.{name} is {show(value)}; use {expected}")
        if section in SECTION_CHECKS:
            found.extend(SECTION_CHECKS[section](values))
    model = (params.get("train") or {}).get("model", "xgboost") if isinstance(params.get("train"), dict) else None
    if params.get("engine") == "dask" and model not in (None, "xgboost") and (sections is None or "train" in sections):
        found.append(f"train.model is {show(model)}, and engine: dask trains xgboost only (xgboost.dask); "
                     "set train.model to xgboost, or engine to pandas")
    return found


def show(value):
    """A value as YAML would write it: 'avg', 0.5, null, true, ['century']."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return repr(value)
