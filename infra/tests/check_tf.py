#!/usr/bin/env python3
"""Parses every .tf file of infra/ with python-hcl2 and evaluates the configuration like a
`terraform plan` that cannot reach Google Cloud: variables, locals (the manifest included, via
yamldecode), the keys of every for_each/count, and every attribute of every resource instance.
Values only known after apply (resource attributes, data sources) stay symbolic: a reference
such as google_pubsub_topic.topic["user-signups"].id prints as "${...}" and is checked to name
a declared resource and an existing instance key.

Output: one JSON document on stdout (files, errors, variables, locals, resources with their
keys and instances, outputs, terraform settings). crates/manifest/tests/infra.rs runs it and
compares the result with what crates/manifest says the manifest needs.

    python3 infra/tests/check_tf.py [--infra DIR] [--manifest FILE] [--var NAME=VALUE]...
                                    [--var-json NAME=JSON]... [--drop ADDRESS]...

--manifest replaces the file that `file("${path.module}/../shared/functions.yaml")` reads.
--drop removes a resource block before evaluation (what deleting it from the .tf would do).

Exit status: 0 when a JSON document was printed (problems are listed in its "errors"), 2 on
bad usage, 3 when a required Python package is missing.
"""

import argparse
import hashlib
import json
import os
import re
import sys

try:
    import hcl2
    import yaml
    from lark import Token, Tree
except ImportError as missing:  # pragma: no cover - exercised by hand
    sys.stderr.write(
        f"check_tf.py needs python-hcl2 and PyYAML ({missing}). Install them with:\n"
        "    python3 -m pip install -r infra/requirements-test.txt\n"
    )
    sys.exit(3)

try:
    from importlib.metadata import version as _version

    _HCL2 = _version("python-hcl2")
except Exception:  # noqa: BLE001 - reported below like any other missing package
    _HCL2 = "unknown"
if _HCL2.split(".")[0] != "8":
    sys.stderr.write(
        f"check_tf.py walks python-hcl2 8.x parse trees, found python-hcl2 {_HCL2}. Install the pinned one:\n"
        "    python3 -m pip install -r infra/requirements-test.txt\n"
    )
    sys.exit(3)

MANIFEST_REL = os.path.join("..", "shared", "functions.yaml")


class EvalError(Exception):
    """An expression Terraform would refuse (or this checker cannot evaluate)."""


class _Unknown:
    """A value known only after apply that cannot be shown symbolically."""

    def __repr__(self):
        return "(known after apply)"


UNKNOWN = _Unknown()
NOKEY = object()


class TSet(list):
    """A Terraform set: unique elements, iterated in a stable order."""


class Ref:
    """A symbolic reference to a resource or data source attribute (known after apply)."""

    def __init__(self, base, key=NOKEY, path=()):
        self.base = base
        self.key = key
        self.path = tuple(path)

    def __str__(self):
        text = self.base
        if self.key is not NOKEY:
            text += f"[{json.dumps(self.key)}]"
        for p in self.path:
            text += f"[{p}]" if isinstance(p, int) else f".{p}"
        return "${" + text + "}"

    __repr__ = __str__


class ResourceType:
    """`google_x` before `.name`: resolved against the declared resources."""

    def __init__(self, rtype):
        self.rtype = rtype


class DataRoot:
    pass


class DataType:
    def __init__(self, dtype):
        self.dtype = dtype


class LocalsRoot:
    pass


# ---------------------------------------------------------------------------------------------
# Tree helpers


def children(node):
    """Meaningful children: trees other than comments/newlines."""
    return [c for c in node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]


def tokens(node):
    return [c for c in node.children if isinstance(c, Token)]


def ident(node):
    """Name of an identifier / keyword / literal_value node."""
    if isinstance(node, Token):
        return str(node)
    return str(node.children[0])


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def unescape(text):
    def repl(m):
        s = m.group(1)
        if s[0] in _ESCAPES:
            return _ESCAPES[s[0]]
        if s[0] in "uU":
            return chr(int(s[1:], 16))
        raise EvalError(f"unsupported escape \\{s}")

    return re.sub(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", repl, text)


def label_text(node):
    """A block label: a plain quoted string or an identifier."""
    if node.data == "string":
        out = ""
        for part in children(node):
            for tok in part.children:
                if isinstance(tok, Tree):
                    raise EvalError("interpolation in a block label")
                out += unescape(str(tok))
        return out
    return ident(node)


class Block:
    def __init__(self, btype, labels, body, file, line):
        self.type = btype
        self.labels = labels
        self.body = body
        self.file = file
        self.line = line


def parse_body(body, file):
    """Attributes (name -> expr node) and blocks of a body, in order."""
    attrs, blocks = {}, []
    for item in children(body):
        if item.data == "attribute":
            kids = [c for c in item.children if isinstance(c, Tree)]
            name = ident(kids[0])
            if name in attrs:
                raise EvalError(f"{file}:{item.meta.line}: attribute {name} set twice")
            attrs[name] = kids[-1]
        elif item.data == "block":
            kids = children(item)
            inner = kids[-1]
            head = kids[:-1]
            btype = ident(head[0])
            labels = [label_text(h) for h in head[1:]]
            blocks.append(Block(btype, labels, inner, file, item.meta.line))
    return attrs, blocks


# ---------------------------------------------------------------------------------------------
# Values


def type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, TSet):
        return "set"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "object"
    return "unknown"


def is_unknown(v):
    return v is UNKNOWN or isinstance(v, Ref)


def to_string(v):
    if is_unknown(v):
        return v
    if v is None:
        raise EvalError("cannot use a null value in a string")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (int, float, str)):
        return str(v)
    raise EvalError(f"cannot convert a {type_name(v)} to a string")


def equal(a, b):
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, (list, TSet)) and isinstance(b, (list, TSet)):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, str) != isinstance(b, str):
        return False
    return a == b


def make_set(items):
    out = TSet()
    for item in items:
        if not any(equal(item, o) for o in out):
            out.append(item)
    if all(isinstance(i, str) for i in out):
        out.sort()
    return out


def iterate(v):
    """(key, value) pairs of a collection, in Terraform's order."""
    if isinstance(v, dict):
        return [(k, v[k]) for k in sorted(v)]
    if isinstance(v, TSet):
        return [(x, x) for x in v]
    if isinstance(v, list):
        return list(enumerate(v))
    raise EvalError(f"cannot iterate over a {type_name(v)}")


def jsonable(v):
    if v is UNKNOWN:
        return "(known after apply)"
    if isinstance(v, Ref):
        return str(v)
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, TSet)):
        return [jsonable(x) for x in v]
    if isinstance(v, (ResourceType, DataRoot, DataType, LocalsRoot)):
        return "(reference)"
    return v


# ---------------------------------------------------------------------------------------------
# The configuration


class Config:
    def __init__(self, infra, manifest, var_values, drop):
        self.infra = os.path.abspath(infra)
        self.manifest = os.path.abspath(manifest) if manifest else None
        self.errors = []
        self.files = []
        self.resources = {}
        self.data = {}
        self.variables = {}
        self.local_nodes = {}
        self.outputs = {}
        self.terraform = []
        self.sources = {}
        self.dropped = set(drop)
        self._load()
        for addr in drop:
            if addr not in self.resources:
                self.errors.append(f"--drop {addr}: no such resource")
            self.resources.pop(addr, None)
        self.var_values = self._resolve_vars(var_values)
        self.local_values = {}
        self.local_state = {}
        self.keys = {}
        self.key_state = {}
        self.modes = {}
        self.for_each_values = {}

    # -- loading ------------------------------------------------------------------------------

    def _load(self):
        names = sorted(n for n in os.listdir(self.infra) if n.endswith(".tf"))
        if not names:
            self.errors.append(f"{self.infra}: no .tf files")
        for name in names:
            path = os.path.join(self.infra, name)
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            self.sources[name] = text
            try:
                tree = hcl2.parses_to_tree(text)
            except Exception as e:  # noqa: BLE001 - any parse failure is a finding
                self.errors.append(f"{name}: does not parse as HCL: {e}")
                continue
            self.files.append(name)
            try:
                _, blocks = parse_body(children(tree)[0], name)
            except EvalError as e:
                self.errors.append(str(e))
                continue
            for b in blocks:
                self._add_block(b)

    def _add_block(self, b):
        where = f"{b.file}:{b.line}"
        if b.type == "resource":
            addr = ".".join(b.labels)
            if addr in self.resources:
                self.errors.append(f"{where}: resource {addr} declared twice")
            self.resources[addr] = b
        elif b.type == "data":
            self.data["data." + ".".join(b.labels)] = b
        elif b.type == "variable":
            self.variables[b.labels[0]] = b
        elif b.type == "output":
            self.outputs[b.labels[0]] = b
        elif b.type == "locals":
            attrs, _ = parse_body(b.body, b.file)
            for name, node in attrs.items():
                if name in self.local_nodes:
                    self.errors.append(f"{where}: local.{name} declared twice")
                self.local_nodes[name] = (node, b.file)
        elif b.type in ("terraform", "provider", "module", "moved", "import", "check"):
            self.terraform.append(b)
        else:
            self.errors.append(f"{where}: unexpected top-level block {b.type}")

    def source(self, file, node):
        text = self.sources[file]
        return text[node.meta.start_pos : node.meta.end_pos]

    def _resolve_vars(self, given):
        values = {}
        for name in given:
            if name not in self.variables:
                self.errors.append(f"--var {name}: no such variable")
        for name, block in self.variables.items():
            attrs, _ = parse_body(block.body, block.file)
            if name in given:
                values[name] = given[name]
            elif "default" in attrs:
                values[name] = self.eval(attrs["default"], {}, block.file)
            else:
                self.errors.append(f"variable {name} has no value and no default")
                values[name] = UNKNOWN
        return values

    # -- names --------------------------------------------------------------------------------

    def local(self, name):
        if name not in self.local_nodes:
            raise EvalError(f"local.{name} is not declared")
        state = self.local_state.get(name)
        if state == "busy":
            raise EvalError(f"local.{name} refers to itself")
        if state == "done":
            return self.local_values[name]
        if state == "failed":
            raise EvalError(f"local.{name} cannot be evaluated")
        self.local_state[name] = "busy"
        node, file = self.local_nodes[name]
        try:
            value = self.eval(node, {}, file)
        except EvalError as e:
            self.local_state[name] = "failed"
            raise EvalError(f"local.{name}: {e}") from None
        self.local_values[name] = value
        self.local_state[name] = "done"
        return value

    def mode(self, addr):
        if addr not in self.modes:
            attrs, _ = parse_body(self.resources[addr].body, self.resources[addr].file)
            self.modes[addr] = "for_each" if "for_each" in attrs else "count" if "count" in attrs else "single"
        return self.modes[addr]

    def resource_keys(self, addr):
        """Instance keys of a resource: for_each keys, count indexes or [None]."""
        state = self.key_state.get(addr)
        if state == "done":
            return self.keys[addr]
        if state == "busy":
            raise EvalError(f"{addr}: for_each depends on itself")
        self.key_state[addr] = "busy"
        block = self.resources[addr]
        attrs, _ = parse_body(block.body, block.file)
        try:
            if "for_each" in attrs:
                v = self.eval(attrs["for_each"], {}, block.file)
                self.for_each_values[addr] = v
                if is_unknown(v):
                    raise EvalError("for_each keys are known only after apply")
                if isinstance(v, TSet):
                    if not all(isinstance(x, str) for x in v):
                        raise EvalError("for_each over a set needs strings")
                    keys = list(v)
                elif isinstance(v, dict):
                    keys = sorted(v)
                else:
                    raise EvalError(f"for_each must be a map or a set of strings, not a {type_name(v)}")
            elif "count" in attrs:
                v = self.eval(attrs["count"], {}, block.file)
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise EvalError(f"count must be a whole number, not {v!r}")
                keys = list(range(v))
            else:
                keys = [None]
        except EvalError as e:
            self.key_state[addr] = "failed"
            raise EvalError(f"{addr} ({block.file}:{block.line}): {e}") from None
        self.keys[addr] = keys
        self.key_state[addr] = "done"
        return keys

    def lookup_name(self, name, scope):
        if name in scope:
            return scope[name]
        if name == "var":
            return self.var_values
        if name == "local":
            return LocalsRoot()
        if name == "path":
            return {"module": self.infra, "root": self.infra, "cwd": os.getcwd()}
        if name == "data":
            return DataRoot()
        if name == "terraform":
            return {"workspace": "default"}
        if name in ("each", "count", "self"):
            raise EvalError(f"{name} is not available here")
        return ResourceType(name)

    def get_attr(self, v, name):
        if isinstance(v, LocalsRoot):
            return self.local(name)
        if isinstance(v, DataRoot):
            return DataType(name)
        if isinstance(v, DataType):
            addr = f"data.{v.dtype}.{name}"
            if addr not in self.data:
                raise EvalError(f"reference to undeclared data source {addr}")
            return Ref(addr)
        if isinstance(v, ResourceType):
            addr = f"{v.rtype}.{name}"
            if addr not in self.resources:
                raise EvalError(f"reference to undeclared resource {addr}")
            return Ref(addr)
        if isinstance(v, Ref):
            if v.base in self.resources and v.key is NOKEY and not v.path:
                if self.mode(v.base) != "single":
                    raise EvalError(f"{v.base} has several instances: index it before .{name}")
            return Ref(v.base, v.key, v.path + (name,))
        if v is UNKNOWN:
            return UNKNOWN
        if isinstance(v, dict):
            if name in v:
                return v[name]
            raise EvalError(f"this object has no attribute {name!r}")
        raise EvalError(f"cannot read .{name} of a {type_name(v)}")

    def index(self, v, key):
        if is_unknown(key):
            return UNKNOWN
        if isinstance(v, Ref):
            if v.base in self.resources and v.key is NOKEY and not v.path:
                mode = self.mode(v.base)
                if mode != "single":
                    keys = self.resource_keys(v.base)
                    if key not in keys:
                        raise EvalError(f"{v.base}[{json.dumps(key)}] is not an instance (keys: {keys})")
                    return Ref(v.base, key)
            return Ref(v.base, v.key, v.path + (key,))
        if v is UNKNOWN:
            return UNKNOWN
        if isinstance(v, dict):
            if not isinstance(key, str):
                key = to_string(key)
            if key in v:
                return v[key]
            raise EvalError(f"key {key!r} not found (keys: {sorted(v)})")
        if isinstance(v, list) and not isinstance(v, TSet):
            if isinstance(key, str) and key.isdigit():
                key = int(key)
            if not isinstance(key, int) or isinstance(key, bool):
                raise EvalError(f"a list index must be a number, not {key!r}")
            if 0 <= key < len(v):
                return v[key]
            raise EvalError(f"index {key} out of range (length {len(v)})")
        raise EvalError(f"cannot index a {type_name(v)}")

    def collection(self, v):
        """A value to iterate over; a whole for_each resource is a map of its instances."""
        if isinstance(v, Ref) and v.base in self.resources and v.key is NOKEY and not v.path:
            mode = self.mode(v.base)
            if mode == "for_each":
                return {k: Ref(v.base, k) for k in self.resource_keys(v.base)}
            if mode == "count":
                return [Ref(v.base, k) for k in self.resource_keys(v.base)]
        if is_unknown(v):
            raise EvalError("cannot iterate over a value known only after apply")
        return v

    # -- expressions --------------------------------------------------------------------------

    def eval(self, node, scope, file):
        try:
            return self._eval(node, scope, file)
        except RecursionError:
            raise EvalError("expression nested too deeply") from None

    def _eval(self, node, scope, file):
        if isinstance(node, Token):
            raise EvalError(f"unexpected token {node!r}")
        kind = node.data
        kids = children(node)
        if kind == "expr_term":
            if len(kids) != 1:
                raise EvalError("malformed expression")
            return self._eval(kids[0], scope, file)
        if kind == "identifier":
            return self.lookup_name(ident(node), scope)
        if kind == "literal_value":
            return {"true": True, "false": False, "null": None}[ident(node)]
        if kind == "int_lit":
            return int(str(node.children[0]))
        if kind == "float_lit":
            return float(str(node.children[0]))
        if kind == "string":
            return self._template(kids, scope, file)
        if kind == "tuple":
            return [self._eval(k, scope, file) for k in kids]
        if kind == "object":
            out = {}
            for elem in kids:
                key_node, value_node = children(elem)
                key = self._object_key(key_node, scope, file)
                if is_unknown(key):
                    raise EvalError("object key known only after apply")
                key = to_string(key)
                if key in out:
                    raise EvalError(f"duplicate object key {key!r}")
                out[key] = self._eval(value_node, scope, file)
            return out
        if kind == "get_attr_expr_term":
            target, attr = kids
            return self.get_attr(self._eval(target, scope, file), ident(children(attr)[0]))
        if kind == "index_expr_term":
            target, idx = kids
            value = self._eval(target, scope, file)
            if idx.data == "short_index":
                key = int(str(tokens(idx)[-1]))
            else:
                key = self._eval(children(idx)[0], scope, file)
            return self.index(value, key)
        if kind in ("attr_splat_expr_term", "full_splat_expr_term"):
            target, splat = kids
            value = self._eval(target, scope, file)
            if is_unknown(value):
                return UNKNOWN
            items = [value] if isinstance(value, dict) else [x for _, x in iterate(self.collection(value))]
            out = []
            for item in items:
                for step in children(splat):
                    if step.data == "get_attr":
                        item = self.get_attr(item, ident(children(step)[0]))
                    elif step.data == "short_index":
                        item = self.index(item, int(str(tokens(step)[-1])))
                    else:
                        item = self.index(item, self._eval(children(step)[0], scope, file))
                out.append(item)
            return out
        if kind == "conditional":
            cond, yes, no = kids
            c = self._eval(cond, scope, file)
            if is_unknown(c):
                return UNKNOWN
            if not isinstance(c, bool):
                raise EvalError(f"a condition must be a bool, not a {type_name(c)}")
            return self._eval(yes if c else no, scope, file)
        if kind == "unary_op":
            op = str(tokens(node)[0])
            v = self._eval(kids[0], scope, file)
            if is_unknown(v):
                return UNKNOWN
            if op == "!":
                if not isinstance(v, bool):
                    raise EvalError("! needs a bool")
                return not v
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise EvalError("- needs a number")
            return -v
        if kind == "binary_op":
            left, term = kids
            op_node, right = children(term)
            return self._binary(str(op_node.children[0]), left, right, scope, file)
        if kind == "function_call":
            return self._call(node, scope, file)
        if kind in ("for_tuple_expr", "for_object_expr"):
            return self._for(node, scope, file)
        if kind in ("heredoc_template", "heredoc_template_trim", "template_string"):
            raise EvalError("heredoc and escaped templates are not supported by check_tf.py")
        raise EvalError(f"unsupported expression {kind}")

    def _object_key(self, key_node, scope, file):
        inner = children(key_node)[0]
        if inner.data == "keyword":
            return ident(inner)
        if inner.data == "expr_term":
            term = children(inner)
            if len(term) == 1 and term[0].data == "identifier" and not tokens(inner):
                return ident(term[0])
        if inner.data == "identifier":
            return ident(inner)
        return self._eval(inner, scope, file)

    def _template(self, parts, scope, file):
        values = []
        for part in parts:
            for piece in part.children:
                if isinstance(piece, Tree) and piece.data == "interpolation":
                    values.append(self._eval(children(piece)[0], scope, file))
                elif isinstance(piece, Tree):
                    raise EvalError("template directives (%{...}) are not supported by check_tf.py")
                elif piece.type == "ESCAPED_INTERPOLATION":
                    values.append(str(piece)[1:])
                elif piece.type == "ESCAPED_DIRECTIVE":
                    values.append(str(piece)[1:])
                else:
                    values.append(unescape(str(piece)))
        if len(parts) == 1 and len(parts[0].children) == 1:
            piece = parts[0].children[0]
            if isinstance(piece, Tree) and piece.data == "interpolation":
                return values[0]
        if any(v is UNKNOWN for v in values):
            return UNKNOWN
        return "".join(str(v) if isinstance(v, Ref) else to_string(v) for v in values)

    def _binary(self, op, left, right, scope, file):
        a = self._eval(left, scope, file)
        b = self._eval(right, scope, file)
        if op in ("&&", "||"):
            for v in (a, b):
                if not is_unknown(v) and not isinstance(v, bool):
                    raise EvalError(f"{op} needs bools, not a {type_name(v)}")
            if op == "&&":
                if a is False or b is False:
                    return False
                return UNKNOWN if is_unknown(a) or is_unknown(b) else True
            if a is True or b is True:
                return True
            return UNKNOWN if is_unknown(a) or is_unknown(b) else False
        if is_unknown(a) or is_unknown(b):
            return UNKNOWN
        if op == "==":
            return equal(a, b)
        if op == "!=":
            return not equal(a, b)
        for v in (a, b):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise EvalError(f"{op} needs numbers, not a {type_name(v)}")
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if b == 0:
                raise EvalError("division by zero")
            r = a / b
            return int(r) if r.is_integer() else r
        if op == "%":
            return a % b
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]

    def _for(self, node, scope, file):
        kids = children(node)
        intro = kids[0]
        names = [ident(c) for c in children(intro) if c.data == "identifier"]
        source = self.collection(self._eval(children(intro)[-1], scope, file))
        cond = kids[-1] if kids[-1].data == "for_cond" else None
        grouping = any(str(t) == "..." for t in tokens(node))
        object_form = node.data == "for_object_expr"
        exprs = [k for k in kids[1:] if k.data != "for_cond"]
        out = {} if object_form else []
        for k, v in iterate(source):
            inner = dict(scope)
            if len(names) == 2:
                inner[names[0]], inner[names[1]] = k, v
            else:
                inner[names[0]] = v
            if cond is not None:
                c = self._eval(children(cond)[0], inner, file)
                if is_unknown(c):
                    raise EvalError("a for condition known only after apply")
                if not isinstance(c, bool):
                    raise EvalError("a for condition must be a bool")
                if not c:
                    continue
            if object_form:
                key = self._eval(exprs[0], inner, file)
                if is_unknown(key):
                    raise EvalError("a for key known only after apply")
                key = to_string(key)
                value = self._eval(exprs[1], inner, file)
                if grouping:
                    out.setdefault(key, []).append(value)
                elif key in out:
                    raise EvalError(f"duplicate object key {key!r} (use ... to group)")
                else:
                    out[key] = value
            else:
                out.append(self._eval(exprs[0], inner, file))
        return out

    # -- functions ----------------------------------------------------------------------------

    def _call(self, node, scope, file):
        kids = children(node)
        name = ident(kids[0])
        arg_nodes = children(kids[1]) if len(kids) > 1 else []
        expand = len(kids) > 1 and any(str(t) == "..." for t in tokens(kids[1]))
        if name in ("try", "can"):
            for i, a in enumerate(arg_nodes):
                try:
                    v = self._eval(a, scope, file)
                except EvalError:
                    if name == "can":
                        return False
                    if i == len(arg_nodes) - 1:
                        raise
                    continue
                return True if name == "can" else v
            raise EvalError(f"{name}() needs arguments")
        args = [self._eval(a, scope, file) for a in arg_nodes]
        if expand:
            last = self.collection(args.pop())
            args.extend(x for _, x in iterate(last))
        if name not in FUNCTIONS:
            raise EvalError(f"function {name}() is not known to check_tf.py")
        if name == "file":
            return self._file(*args)
        fn = FUNCTIONS[name]
        if name not in LENIENT and any(is_unknown(a) for a in args):
            return UNKNOWN
        try:
            return fn(*args)
        except EvalError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
            raise EvalError(f"{name}(): {e}") from None

    def _file(self, path):
        if is_unknown(path):
            return UNKNOWN
        full = os.path.normpath(path if os.path.isabs(path) else os.path.join(os.getcwd(), path))
        if self.manifest and full == os.path.normpath(os.path.join(self.infra, MANIFEST_REL)):
            full = self.manifest
        try:
            with open(full, encoding="utf-8") as fh:
                return fh.read()
        except OSError as e:
            raise EvalError(f"file({path!r}): {e}") from None

    # -- resources ----------------------------------------------------------------------------

    def eval_body(self, block, scope, references):
        attrs, blocks = parse_body(block.body, block.file)
        out = {}
        for name, node in attrs.items():
            if name in ("for_each", "count", "provider"):
                continue
            if name == "depends_on":
                out[name] = self.static_refs(node, block.file, references)
                continue
            out[name] = self.eval(node, scope, block.file)
        for b in blocks:
            if b.type == "lifecycle":
                out["lifecycle"] = self.lifecycle(b)
            elif b.type == "dynamic":
                self.dynamic(b, scope, out, references)
            else:
                body = self.eval_body(b, scope, references)
                if b.labels:
                    body["__labels__"] = b.labels
                out.setdefault(b.type, []).append(body)
        return out

    def dynamic(self, b, scope, out, references):
        attrs, blocks = parse_body(b.body, b.file)
        name = b.labels[0]
        iterator = self.source(b.file, attrs["iterator"]).strip() if "iterator" in attrs else name
        content = [c for c in blocks if c.type == "content"]
        if len(content) != 1:
            raise EvalError(f"{b.file}:{b.line}: dynamic {name} needs one content block")
        items = self.collection(self.eval(attrs["for_each"], scope, b.file))
        out.setdefault(name, [])
        for k, v in iterate(items):
            inner = dict(scope)
            inner[iterator] = {"key": k, "value": v}
            out[name].append(self.eval_body(content[0], inner, references))

    def lifecycle(self, b):
        attrs, blocks = parse_body(b.body, b.file)
        out = {}
        for name, node in attrs.items():
            out[name] = self.source(b.file, node)
        for c in blocks:
            out.setdefault(c.type, []).append(
                {k: self.source(c.file, n) for k, n in parse_body(c.body, c.file)[0].items()}
            )
        return out

    def static_refs(self, node, file, references):
        """depends_on: a list of resource addresses, each checked to exist."""
        addrs = []
        for item in children(children(node)[0]) if node.data == "expr_term" else []:
            text = self.source(file, item).strip()
            addrs.append(text)
            if text not in self.resources and text not in self.data:
                references.append(f"{file}: depends_on names undeclared {text}")
        return addrs

    def run(self):
        result = {
            "files": self.files,
            "variables": jsonable(self.var_values),
            "locals": {},
            "resources": {},
            "data": sorted(self.data),
            "outputs": {},
            "terraform": {},
        }
        for name in sorted(self.variables):
            self.check_validations(name)
        for name in sorted(self.local_nodes):
            try:
                result["locals"][name] = jsonable(self.local(name))
            except EvalError as e:
                self.errors.append(f"{self.local_nodes[name][1]}: {e}")
        for addr in sorted(self.resources):
            block = self.resources[addr]
            attrs, _ = parse_body(block.body, block.file)
            entry = {
                "type": block.labels[0],
                "name": block.labels[1],
                "file": block.file,
                "line": block.line,
                "mode": self.mode(addr),
                "for_each": self.source(block.file, attrs["for_each"]) if "for_each" in attrs else None,
                "count": self.source(block.file, attrs["count"]) if "count" in attrs else None,
                "keys": [],
                "instances": {},
            }
            result["resources"][addr] = entry
            try:
                keys = self.resource_keys(addr)
            except EvalError as e:
                self.errors.append(str(e))
                continue
            entry["keys"] = [k for k in keys if k is not None]
            for key in keys:
                scope = {}
                if entry["mode"] == "for_each":
                    each_value = self.for_each_values[addr]
                    value = key if isinstance(each_value, TSet) else each_value[key]
                    scope["each"] = {"key": key, "value": value}
                elif entry["mode"] == "count":
                    scope["count"] = {"index": key}
                references = []
                try:
                    body = self.eval_body(block, scope, references)
                except EvalError as e:
                    self.errors.append(f"{addr}[{json.dumps(key)}] ({block.file}:{block.line}): {e}")
                    continue
                self.errors.extend(references)
                entry["instances"]["" if key is None else str(key)] = jsonable(body)
        for name in sorted(self.outputs):
            block = self.outputs[name]
            attrs, _ = parse_body(block.body, block.file)
            try:
                result["outputs"][name] = jsonable(self.eval(attrs["value"], {}, block.file))
            except (EvalError, KeyError) as e:
                self.errors.append(f"output {name} ({block.file}:{block.line}): {e}")
        for block in self.terraform:
            try:
                body = self.eval_body(block, {}, [])
            except EvalError as e:
                self.errors.append(f"{block.type} block ({block.file}:{block.line}): {e}")
                continue
            result["terraform"].setdefault(block.type, []).append(
                {"labels": block.labels, "body": jsonable(body)}
            )
        result["errors"] = self.errors
        return result

    def check_validations(self, name):
        block = self.variables[name]
        _, blocks = parse_body(block.body, block.file)
        for b in blocks:
            if b.type != "validation":
                continue
            attrs, _ = parse_body(b.body, b.file)
            try:
                ok = self.eval(attrs["condition"], {}, b.file)
            except EvalError as e:
                self.errors.append(f"variable {name} validation ({b.file}:{b.line}): {e}")
                continue
            if ok is False:
                self.errors.append(f"variable {name} = {self.var_values[name]!r} fails its validation ({b.file}:{b.line})")


# ---------------------------------------------------------------------------------------------
# Terraform functions (the subset infra/ uses, with Terraform's semantics)


def _need(cond, message):
    if not cond:
        raise EvalError(message)


def _merge(*maps):
    out = {}
    for m in maps:
        if m is None:
            continue
        if is_unknown(m):
            return UNKNOWN
        _need(isinstance(m, dict), f"merge() takes maps or objects, not a {type_name(m)}")
        out.update(m)
    return out


def _flatten(v):
    out = []
    for x in v:
        if isinstance(x, list):
            out.extend(_flatten(x))
        else:
            out.append(x)
    return out


def _coalesce(*args):
    for a in args:
        if a is not None and a != "":
            return a
    raise EvalError("coalesce(): no non-null, non-empty argument")


def _lookup(m, key, *default):
    _need(isinstance(m, dict), "lookup() takes a map")
    if key in m:
        return m[key]
    if default:
        return default[0]
    raise EvalError(f"lookup(): no key {key!r}")


def _regex(pattern, s):
    m = re.search(pattern, s)
    _need(m is not None, f"regex(): pattern {pattern!r} does not match")
    if m.groupdict():
        return m.groupdict()
    if m.groups():
        return list(m.groups())
    return m.group(0)


def _replace(s, old, new):
    if len(old) > 1 and old.startswith("/") and old.endswith("/"):
        return re.sub(old[1:-1], re.sub(r"\$(\d+)", r"\\\1", new), s)
    return s.replace(old, new)


def _substr(s, offset, length):
    if length == -1:
        return s[offset:]
    return s[offset : offset + length]


def _tostring(v):
    if v is None:
        return None
    return to_string(v)


def _tonumber(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    f = float(v)
    return int(f) if f.is_integer() else f


def _length(v):
    _need(isinstance(v, (str, list, dict)), f"length() of a {type_name(v)}")
    return len(v)


def _one(v):
    _need(len(v) <= 1, "one() takes at most one element")
    return v[0] if v else None


def _setproduct(*lists):
    out = [[]]
    for lst in lists:
        out = [prefix + [x] for prefix in out for x in (lst if isinstance(lst, list) else [])]
    return out


def _alltrue(v):
    vals = list(v)
    if any(x is False for x in vals):
        return False
    return UNKNOWN if any(is_unknown(x) for x in vals) else True


def _anytrue(v):
    vals = list(v)
    if any(x is True for x in vals):
        return True
    return UNKNOWN if any(is_unknown(x) for x in vals) else False


def _contains(coll, value):
    return any(equal(x, value) for x in coll)


FUNCTIONS = {
    "abs": abs,
    "alltrue": _alltrue,
    "anytrue": _anytrue,
    "can": None,
    "coalesce": _coalesce,
    "compact": lambda v: [x for x in v if x not in (None, "")],
    "concat": lambda *ls: [x for lst in ls for x in lst],
    "contains": _contains,
    "distinct": lambda v: [x for i, x in enumerate(v) if not any(equal(x, y) for y in v[:i])],
    "element": lambda v, i: v[i % len(v)],
    "endswith": lambda s, suffix: s.endswith(suffix),
    "file": None,
    "flatten": _flatten,
    "format": lambda f, *a: re.sub(r"%[sdv]", "{}", f).format(*[to_string(x) for x in a]),
    "join": lambda sep, v: sep.join(to_string(x) for x in v),
    "jsonencode": lambda v: json.dumps(jsonable(v), separators=(",", ":"), sort_keys=True),
    "keys": lambda m: sorted(m),
    "length": _length,
    "lookup": _lookup,
    "lower": lambda s: s.lower(),
    "max": max,
    "merge": _merge,
    "min": min,
    "one": _one,
    "range": lambda *a: list(range(*a)),
    "regex": _regex,
    "replace": _replace,
    "setproduct": _setproduct,
    "sha1": lambda s: hashlib.sha1(s.encode()).hexdigest(),
    "sha256": lambda s: hashlib.sha256(s.encode()).hexdigest(),
    "sort": lambda v: sorted(to_string(x) for x in v),
    "split": lambda sep, s: s.split(sep),
    "startswith": lambda s, prefix: s.startswith(prefix),
    "substr": _substr,
    "tobool": lambda v: v if isinstance(v, bool) else {"true": True, "false": False}[v],
    "tolist": list,
    "tomap": dict,
    "tonumber": _tonumber,
    "toset": make_set,
    "tostring": _tostring,
    "trimprefix": lambda s, p: s[len(p) :] if s.startswith(p) else s,
    "trimsuffix": lambda s, p: s[: -len(p)] if p and s.endswith(p) else s,
    "try": None,
    "upper": lambda s: s.upper(),
    "values": lambda m: [m[k] for k in sorted(m)],
    "yamldecode": lambda s: yaml.safe_load(s),
    "zipmap": lambda k, v: dict(zip(k, v)),
}
# Functions that see unknown arguments themselves (Terraform's semantics need it).
LENIENT = {"merge", "alltrue", "anytrue", "coalesce", "concat", "tostring", "compact", "flatten", "distinct", "contains"}


def _parse_var(text, as_json):
    if "=" not in text:
        raise SystemExit(f"--var{'-json' if as_json else ''} {text!r}: expected NAME=VALUE")
    name, value = text.split("=", 1)
    return name, (json.loads(value) if as_json else value)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--infra", default=os.path.dirname(here), help="the Terraform directory")
    parser.add_argument("--manifest", help="manifest to read instead of ../shared/functions.yaml")
    parser.add_argument("--var", action="append", default=[], help="NAME=VALUE (string)")
    parser.add_argument("--var-json", action="append", default=[], help="NAME=JSON value")
    parser.add_argument("--drop", action="append", default=[], help="resource address to remove")
    args = parser.parse_args()

    values = dict(_parse_var(v, False) for v in args.var)
    values.update(_parse_var(v, True) for v in args.var_json)
    config = Config(args.infra, args.manifest, values, args.drop)
    result = config.run()
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
