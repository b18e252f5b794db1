"""What a stage script uses, read statically with `ast` (never imported, never run): the project's own modules it
imports, the project files it reads, and the params.yaml keys it reads. `mlp doctor` compares that with dvc.yaml.

The scan follows the code a stage can run: the script's top level, every function it calls or names (in the script
and in the project modules it imports), with what it passes them. A value is tracked as one of
- Section("train"): a part of params.yaml: `load_params("train")`, a key of it (`params["space"]`), a copy
  (`{**params}`, `{k: v for k, v in params.items()}`), and what a function returns of them;
- Text("data/x.csv"): a string, built from literals, constants, `os.path.join` and `/`;
- a module, a function or a class of the project, or a tuple of those (unpacked like Python does).
A key read is `params["k"]`, `params.get("k")` or `"k" in params`; any other use of a section (stored, passed to
code outside the project, compared, iterated) reads all of it. A file read is a text path given to open(), to a
reader (pandas / pyarrow / numpy / shutil / sqlite3 ...), or to a project function that reads its argument.

A `# doctor: runtime` comment on a line, or on the `def` line of a function, marks the param keys and files read
there as deciding how the stage runs, not what it computes (Dask's scheduler address, say): used, never required.
Pure: source text comes from `read_source(path)`; nothing is read from disk here.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RUNTIME_MARK = re.compile(r"#\s*doctor:\s*runtime\b")
PARAMS_FILE = "params.yaml"
# Calls that read the file named by their first argument, by the called name's last part.
READERS = {"open", "read_csv", "read_parquet", "read_json", "read_table", "read_feather", "read_excel", "read_orc",
           "read_pickle", "read_fwf", "read_text", "read_bytes", "ParquetFile", "ParquetDataset", "dataset",
           "open_csv", "load", "loadtxt", "genfromtxt", "copyfile", "copy", "copy2", "copytree", "connect"}
PATH_KEYWORDS = ("file", "path", "filepath_or_buffer", "source", "fname", "src", "io", "database")
PASS_THROUGH = {"Path", "PurePath", "fspath", "abspath", "normpath", "str", "dict"}  # f(x) is x (a path or a copy)
LOADERS = {"safe_load", "load", "full_load"}
HARMLESS = {"isinstance", "issubclass", "type", "len", "bool", "id", "hasattr", "callable"}  # no value read


class ScanError(Exception):
    """A module that does not parse: its path, line and what is wrong."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(f"{path} line {line}: {problem}")
        self.path, self.line, self.problem = path, line, problem


@dataclass(frozen=True)
class Section:
    path: str  # dotted key in params.yaml; "" is the whole file


@dataclass(frozen=True)
class Text:
    text: str
    inside: bool = False  # something inside this folder (a name joined on at run time)


@dataclass(frozen=True)
class Tup:
    items: tuple


@dataclass(frozen=True)
class Mod:
    path: str


@dataclass(frozen=True)
class Def:
    module: str
    qualname: str  # "f", "Class" or "Class.method"


@dataclass
class ScriptUses:
    """What one script uses; each name maps to where (path:line) it was first seen."""

    modules: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    runtime: dict[str, str] = field(default_factory=dict)  # params and files read under a `# doctor: runtime` mark


@dataclass
class _Module:
    path: str
    tree: ast.Module
    runtime_lines: set[int]
    defs: dict[str, ast.AST] = field(default_factory=dict)  # "f", "C", "C.m"
    names: dict[str, Any] = field(default_factory=dict)  # the module's globals: imports and constants


@dataclass
class _Frame:
    module: _Module
    env: dict[str, Any]
    runtime: bool = False
    cls: str | None = None  # the class of a method
    returns: list[Any] = field(default_factory=list)


def scan_script(script: str, read_source: Callable[[str], str | None]) -> ScriptUses:
    """What `python <script>` (a project-relative path) uses. read_source(path) is a project file's text or None.
    Raises ScanError for a module that does not parse."""
    return _Scanner(script, read_source).run()


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


class _Scanner:
    def __init__(self, script: str, read_source: Callable[[str], str | None]) -> None:
        self.script, self.read_source = script, read_source
        self.search = [posixpath.dirname(script), ""]  # sys.path[0] is the script's folder; then the project
        self.modules: dict[str, _Module | None] = {}
        self.done: dict[tuple, Any] = {}
        self.uses = ScriptUses()

    def run(self) -> ScriptUses:
        self._load(self.script, f"{self.script}:1")
        return self.uses

    # --- modules -------------------------------------------------------------------------------------

    def _load(self, path: str, where: str) -> _Module | None:
        if path in self.modules:
            return self.modules[path]
        text = self.read_source(path)
        if text is None:
            self.modules[path] = None
            return None
        try:
            tree = ast.parse(text, filename=path)
        except SyntaxError as e:
            raise ScanError(path, e.lineno or 0, e.msg) from None
        lines = {i for i, line in enumerate(text.splitlines(), 1) if RUNTIME_MARK.search(line)}
        module = self.modules[path] = _Module(path, tree, lines)
        self.uses.modules.setdefault(path, where)
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                module.defs[node.name] = node
                module.names[node.name] = Def(path, node.name)
                if isinstance(node, ast.ClassDef):
                    for item in node.body:
                        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                            module.defs[f"{node.name}.{item.name}"] = item
        # Every import anywhere in a module is a dependency: a helper's own imports run when it is used.
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self._import(node, module, {})
        self._body(tree.body, _Frame(module, module.names), top=True)
        return module

    def _find(self, name: str, level: int, importer: str) -> str | None:
        parts = name.split(".") if name else []
        if level:
            base = posixpath.dirname(importer)
            for _ in range(level - 1):
                base = posixpath.dirname(base)
            bases = [base]
        else:
            bases = self.search
        for base in bases:
            stem = posixpath.join(base, *parts) if parts else base
            for candidate in (f"{stem}.py", posixpath.join(stem, "__init__.py")):
                if self.read_source(candidate) is not None:
                    return posixpath.normpath(candidate)
        return None

    def _import(self, node: ast.Import | ast.ImportFrom, module: _Module, env: dict[str, Any]) -> None:
        where = f"{module.path}:{node.lineno}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                found = self._find(alias.name, 0, module.path)
                if found and self._load(found, where):
                    top = alias.name.split(".")[0]
                    target = found if alias.asname else self._find(top, 0, module.path)
                    env[alias.asname or top] = Mod(target or found)
            return
        source = self._find(node.module or "", node.level, module.path)
        loaded = self._load(source, where) if source else None
        for alias in node.names:
            sub = self._find(f"{node.module}.{alias.name}" if node.module else alias.name, node.level, module.path)
            if sub and self._load(sub, where):
                env[alias.asname or alias.name] = Mod(sub)
            elif loaded is not None and alias.name != "*":
                env[alias.asname or alias.name] = self._lookup(loaded, alias.name)

    def _lookup(self, module: _Module, name: str, depth: int = 0) -> Any:
        value = module.names.get(name)
        if value is None and depth < 8:  # a name the module imported from another: resolve where it is defined
            for node in module.tree.body:
                if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
                    self._import(node, module, module.names)
                    return module.names.get(name)
        return value

    # --- statements ----------------------------------------------------------------------------------

    def _body(self, statements: list[ast.stmt], frame: _Frame, top: bool = False) -> None:
        for node in statements:
            self._stmt(node, frame, top)

    def _stmt(self, node: ast.stmt, frame: _Frame, top: bool = False) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if not top:  # a nested function or class: scanned as reachable, with the enclosing names
                env = dict(frame.env)
                if not isinstance(node, ast.ClassDef):
                    env.update({a.arg: None for a in ast.walk(node.args) if isinstance(a, ast.arg)})
                self._body(node.body, _Frame(frame.module, env, frame.runtime or self._marked(frame, node), frame.cls))
            for decorator in node.decorator_list:
                self._eval(decorator, frame)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self._import(node, frame.module, frame.env)
        elif isinstance(node, ast.Assign):
            value = self._eval(node.value, frame)
            for target in node.targets:
                self._bind(target, value, frame)
        elif isinstance(node, ast.AugAssign):  # `x += y` is `x = x + y`: unknown x stays unknown
            self._bind(node.target, self._eval(ast.BinOp(node.target, node.op, node.value), frame), frame)
        elif isinstance(node, ast.AnnAssign):
            self._bind(node.target, self._eval(node.value, frame) if node.value else None, frame)
        elif isinstance(node, ast.Return):
            frame.returns.append(self._eval(node.value, frame) if node.value else None)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            items = self._eval(node.iter, frame)
            if isinstance(items, Tup) and items.items and all(isinstance(i, Text) for i in items.items):
                for item in items.items:  # `for name in ("a.py", "b.py")`: the body once per name
                    self._bind(node.target, item, frame)
                    self._body(node.body, frame)
            else:
                self._use(items, frame, node)  # iterating a section reads all of it
                self._bind(node.target, None, frame)
                self._body(node.body, frame)
            self._body(node.orelse, frame)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                value = self._eval(item.context_expr, frame)
                if item.optional_vars is not None:
                    self._bind(item.optional_vars, value, frame)
            self._body(node.body, frame)
        elif isinstance(node, (ast.If, ast.While)):
            self._eval(node.test, frame)
            self._body(node.body + node.orelse, frame)
        elif isinstance(node, ast.Expr):
            self._eval(node.value, frame)
        else:  # try, match, raise, assert, del, ...: the expressions and statements inside
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self._stmt(child, frame)
                elif isinstance(child, ast.expr):
                    self._use(self._eval(child, frame), frame, child)
                elif isinstance(child, ast.excepthandler):
                    self._body(child.body, frame)

    def _bind(self, target: ast.expr, value: Any, frame: _Frame) -> None:
        if isinstance(target, ast.Name):
            frame.env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            items = value.items if isinstance(value, Tup) and len(value.items) == len(target.elts) else None
            self._use(value if items is None else None, frame, target)
            for i, element in enumerate(target.elts):
                self._bind(element, items[i] if items else None, frame)
        else:  # an attribute or an item: the value is stored away, so all of it counts as read
            self._use(value, frame, target)
            self._eval(target, frame)

    def _marked(self, frame: _Frame, node: ast.AST) -> bool:
        return getattr(node, "lineno", 0) in frame.module.runtime_lines

    # --- what is read --------------------------------------------------------------------------------

    def _record(self, kind: str, name: str, frame: _Frame, node: ast.AST) -> None:
        where = f"{frame.module.path}:{getattr(node, 'lineno', 0)}"
        target = self.uses.runtime if frame.runtime or self._marked(frame, node) else getattr(self.uses, kind)
        target.setdefault(name, where)

    def _use(self, value: Any, frame: _Frame, node: ast.AST) -> None:
        """A value used in a way the scan does not follow: a section is read whole."""
        if isinstance(value, Section):
            self._record("params", value.path, frame, node)
        elif isinstance(value, Tup):
            for item in value.items:
                self._use(item, frame, node)

    def _key(self, section: Section, key: str, frame: _Frame, node: ast.AST) -> Section:
        path = f"{section.path}.{key}" if section.path else key
        self._record("params", path, frame, node)
        return Section(path)

    def _read(self, value: Any, frame: _Frame, node: ast.AST) -> None:
        if isinstance(value, Text):
            self._record("files", posixpath.normpath(value.text) + ("/" if value.inside else ""), frame, node)

    # --- expressions ---------------------------------------------------------------------------------

    def _name(self, name: str, frame: _Frame) -> Any:
        if name == "__file__":
            return Text(frame.module.path)
        if name in frame.env:
            return frame.env[name]
        return self._lookup(frame.module, name)

    def _callee(self, node: ast.expr, frame: _Frame) -> Any:
        """What a call calls, without counting the name as used elsewhere."""
        if isinstance(node, ast.Name):
            if node.id in ("self", "cls") and frame.cls:
                return Def(frame.module.path, frame.cls)
            return self._name(node.id, frame)
        if isinstance(node, ast.Attribute):
            base = self._callee(node.value, frame)
            if isinstance(base, Mod):
                module = self.modules.get(base.path)
                return self._lookup(module, node.attr) if module else None
            if isinstance(base, Def):
                qualname = f"{base.qualname}.{node.attr}"
                module = self.modules.get(base.module)
                return Def(base.module, qualname) if module and qualname in module.defs else None
            return None
        return self._eval(node, frame)

    def _eval(self, node: ast.expr | None, frame: _Frame) -> Any:
        if node is None:
            return None
        if isinstance(node, ast.Constant):
            return Text(node.value) if isinstance(node.value, str) else None
        if isinstance(node, ast.Name):
            value = self._name(node.id, frame)
            if isinstance(value, Def):  # a function passed as a value (a callback) may run
                self._call(value, [], {}, frame, node, whole=True)
            return value
        if isinstance(node, ast.Attribute):
            base = self._callee(node, frame)
            return base if isinstance(base, (Mod, Def)) else None
        if isinstance(node, ast.Subscript):
            base, key = self._eval(node.value, frame), node.slice
            if isinstance(base, Tup) and isinstance(key, ast.Constant) and isinstance(key.value, int):
                return base.items[key.value] if -len(base.items) <= key.value < len(base.items) else None
            index = self._eval(key, frame)
            if isinstance(base, Section) and isinstance(index, Text):
                return self._key(base, index.text, frame, node)
            self._use(base, frame, node)
            self._use(index, frame, node)
            return None
        if isinstance(node, ast.Call):
            return self._eval_call(node, frame)
        if isinstance(node, ast.BoolOp):  # `params or {}`: the first operand that is something
            values = [self._eval(v, frame) for v in node.values]
            return next((v for v in values if v is not None), None)
        if isinstance(node, ast.IfExp):
            self._eval(node.test, frame)
            body, other = self._eval(node.body, frame), self._eval(node.orelse, frame)
            return body if body is not None else other
        if isinstance(node, ast.Compare):
            return self._compare(node, frame)
        if isinstance(node, ast.BinOp):
            left, right = self._eval(node.left, frame), self._eval(node.right, frame)
            if isinstance(node.op, (ast.Div, ast.Add)) and isinstance(left, Text) and not left.inside:
                if isinstance(right, Text):
                    joined = posixpath.join(left.text, right.text) if isinstance(node.op, ast.Div) else left.text + right.text
                    return Text(joined, right.inside)
                return Text(left.text, inside=True) if isinstance(node.op, ast.Div) else None
            self._use(left, frame, node)
            self._use(right, frame, node)
            return None
        if isinstance(node, ast.JoinedStr):
            parts = [self._eval(v, frame) for v in node.values]
            for part in parts:
                self._use(part, frame, node)
            return Text("".join(p.text for p in parts)) if all(isinstance(p, Text) for p in parts) else None
        if isinstance(node, ast.FormattedValue):
            return self._eval(node.value, frame)
        if isinstance(node, ast.Tuple):
            return Tup(tuple(self._eval(e, frame) for e in node.elts))
        if isinstance(node, ast.Dict):
            return self._dict(node, frame)
        if isinstance(node, ast.DictComp) and self._items_of(node.generators, frame) is not None:
            return self._items_of(node.generators, frame)
        if isinstance(node, ast.Lambda):
            self._use(self._eval(node.body, _Frame(frame.module, dict(frame.env), frame.runtime, frame.cls)), frame, node)
            return None
        if isinstance(node, ast.NamedExpr):
            value = self._eval(node.value, frame)
            self._bind(node.target, value, frame)
            return value
        # lists, sets, comprehensions, starred, await, yield ...: each part used as a whole
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.comprehension):
                self._use(self._eval(child.iter, frame), frame, child)
                for condition in child.ifs:
                    self._eval(condition, frame)
            elif isinstance(child, ast.expr):
                self._use(self._eval(child, frame), frame, child)
        return None

    def _items_of(self, generators: list[ast.comprehension], frame: _Frame) -> Section | None:
        """`{k: v for k, v in params.items() if ...}`: a copy of the section (its keys read where they are used)."""
        if len(generators) == 1:
            it = generators[0].iter
            if isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute) and it.func.attr == "items":
                base = self._eval(it.func.value, frame)
                if isinstance(base, Section):
                    return base
        return None

    def _dict(self, node: ast.Dict, frame: _Frame) -> Any:
        """`{**DEFAULTS, **params, "k": v}` is the section, with defaults; a section as a value is stored away."""
        result = None
        for key, value in zip(node.keys, node.values):
            evaluated = self._eval(value, frame)
            if key is None and isinstance(evaluated, Section) and result is None:
                result = evaluated
                continue
            self._eval(key, frame)
            self._use(evaluated, frame, value)
        return result

    def _compare(self, node: ast.Compare, frame: _Frame) -> None:
        """`"k" in params` reads the key; `params is None` reads nothing; any other comparison all of it."""
        left = self._eval(node.left, frame)
        for op, right_node in zip(node.ops, node.comparators):
            right = self._eval(right_node, frame)
            if isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, Section) and isinstance(left, Text):
                self._key(right, left.text, frame, node)
            elif not isinstance(op, (ast.Is, ast.IsNot)):
                self._use(left, frame, node)
                self._use(right, frame, node)
            left = right
        return None

    def _eval_call(self, node: ast.Call, frame: _Frame) -> Any:
        func = node.func
        bound = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self"
        if isinstance(func, ast.Attribute) and not bound:
            base = self._eval(func.value, frame)
            if isinstance(base, Section):
                return self._section_method(base, func.attr, node, frame)
            if isinstance(base, Text) and func.attr in READERS:  # Path("x").read_text(), .open()
                self._reader(base, func.attr, node.args, node.keywords, frame, node)
                return None
        callee = self._callee(func, frame)
        args = [self._eval(a.value if isinstance(a, ast.Starred) else a, frame) for a in node.args]
        kwargs = {k.arg: self._eval(k.value, frame) for k in node.keywords}
        starred = any(isinstance(a, ast.Starred) for a in node.args) or None in kwargs
        name = _dotted(func).rsplit(".", 1)[-1]
        if isinstance(callee, Def):
            if name == "load_params" and args and isinstance(args[0], Text):  # the stages' reader of one section
                return Section(args[0].text)
            if starred:  # arguments the scan cannot place: all of them used, the function scanned without them
                for value in [*args, *kwargs.values()]:
                    self._use(value, frame, node)
                return self._call(callee, [], {}, frame, node, whole=True)
            result = self._call(callee, args, kwargs, frame, node, bound=bound)
            return Section("") if any(a == Text(PARAMS_FILE) for a in args) else result
        if name in PASS_THROUGH and len(args) == 1 and not kwargs:
            return args[0]
        if name == "dirname" and len(args) == 1 and isinstance(args[0], Text) and not args[0].inside:
            return Text(posixpath.dirname(args[0].text) or ".")
        if name in LOADERS and args and isinstance(args[0], Section):  # yaml.safe_load(open("params.yaml"))
            return args[0]
        if _dotted(func).endswith("path.join") and args and isinstance(args[0], Text):
            texts = [a for a in args if isinstance(a, Text)]
            if len(texts) == len(args):
                return Text(posixpath.join(*(t.text for t in texts)), texts[-1].inside)
            return Text(posixpath.join(*(t.text for t in texts[:1])), inside=True)
        if name in READERS:
            self._reader(args[0] if args else None, name, node.args[1:], node.keywords, frame, node, kwargs)
            return Section("") if args and args[0] == Text(PARAMS_FILE) else None
        if name not in HARMLESS:
            for value in [*args, *kwargs.values()]:
                self._use(value, frame, node)
        return None

    def _section_method(self, base: Section, method: str, node: ast.Call, frame: _Frame) -> Any:
        args = [self._eval(a, frame) for a in node.args]
        for k in node.keywords:
            self._use(self._eval(k.value, frame), frame, node)
        if method in ("get", "pop", "setdefault") and args and isinstance(args[0], Text):
            for default in args[1:]:
                self._use(default, frame, node)
            return self._key(base, args[0].text, frame, node)
        if method == "copy":
            return base
        self._use(base, frame, node)  # items(), keys(), values(), update(), ...: all of it
        return None

    def _reader(self, path: Any, name: str, rest: list[ast.expr], keywords: list[ast.keyword], frame: _Frame,
                node: ast.AST, kwargs: dict[str, Any] | None = None) -> None:
        if path is None and kwargs:
            path = next((kwargs[k] for k in PATH_KEYWORDS if k in kwargs), None)
        if name == "open":  # a file opened to write is not read
            mode = rest[0] if rest else next((k.value for k in keywords if k.arg == "mode"), None)
            if isinstance(mode, ast.Constant) and isinstance(mode.value, str) and set(mode.value) & set("wax") \
                    and "+" not in mode.value:
                return
        self._read(path, frame, node)

    # --- calls into the project's own functions ------------------------------------------------------

    def _call(self, callee: Def, args: list[Any], kwargs: dict[str, Any], frame: _Frame, node: ast.AST,
              whole: bool = False, bound: bool = False) -> Any:
        """Scan a project function with what it is given (once per distinct arguments); its return value.
        whole: it is referenced, not called here (a callback, a method of an instance); bound: self is implied."""
        module = self.modules.get(callee.module)
        definition = module.defs.get(callee.qualname) if module else None
        if definition is None:
            for value in [*args, *kwargs.values()]:
                self._use(value, frame, node)
            return None
        if isinstance(definition, ast.ClassDef):  # an instance: __init__ with the arguments, every method may run
            for qualname in [q for q in module.defs if q.startswith(f"{callee.qualname}.")]:
                if qualname != f"{callee.qualname}.__init__":
                    self._call(Def(module.path, qualname), [], {}, frame, node, whole=True)
            if f"{callee.qualname}.__init__" in module.defs:
                self._call(Def(module.path, f"{callee.qualname}.__init__"), args, kwargs, frame, node, bound=True)
            return None
        runtime = frame.runtime or self._marked(frame, node) or definition.lineno in module.runtime_lines
        key = (callee, tuple(args), tuple(sorted(kwargs.items(), key=lambda kv: str(kv[0]))), runtime, whole, bound)
        if key in self.done:
            return self.done[key]
        self.done[key] = None  # recursion: no return value known yet
        cls = callee.qualname.split(".")[0] if "." in callee.qualname else None
        names = [a.arg for a in definition.args.posonlyargs + definition.args.args]
        decorators = {_dotted(d) for d in definition.decorator_list}
        if cls and "classmethod" in decorators:
            args = [Def(module.path, cls), *args]
        elif cls and "staticmethod" not in decorators and (whole or bound):
            args = [None, *args]
        env: dict[str, Any] = {}
        defaults = definition.args.defaults
        module_frame = _Frame(module, module.names)
        for i, name in enumerate(names):
            if i < len(args):
                env[name] = args[i]
            elif name in kwargs:
                env[name] = kwargs.pop(name)
            elif i >= len(names) - len(defaults):
                env[name] = self._eval(defaults[i - (len(names) - len(defaults))], module_frame)
        for arg, default in zip(definition.args.kwonlyargs, definition.args.kw_defaults):
            env[arg.arg] = kwargs.pop(arg.arg) if arg.arg in kwargs else self._eval(default, module_frame)
        for extra in [*args[len(names):], *kwargs.values()]:  # into *args / **kwargs: not followed
            self._use(extra, frame, node)
        inner = _Frame(module, env, runtime, cls)
        self._body(definition.body, inner)
        result = next((r for r in inner.returns if isinstance(r, (Section, Tup, Text))), None)
        self.done[key] = result
        return result
