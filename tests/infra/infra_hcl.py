"""Reading infra/ for the structure tests: one loader for a folder of .tf
files, and a small evaluator that resolves an expression the way a plan
would, as far as that is possible without AWS.

python-hcl2 keeps string literals in their quotes (`'"floe"'`) and gives every
other expression as `'${...}'`, so the two can be told apart: `literal()`
accepts only the first kind, `Scope.evaluate()` resolves both.

`Scope` is one module instance: its folder and the arguments it was called
with. `var.x` is the argument, else the variable's default; `local.x` and
`module.m.output` are evaluated in turn; a resource attribute is the
resource's argument of that name. `Scope.stack(env)` is modules/floe_stack
as infra/envs/<env> calls it, with the environment's values as arguments.
What only AWS knows (account id, region, partition) comes from `PLANNED`. An
expression beyond references, arithmetic and the few functions in
`FUNCTIONS` raises `Unresolved`, naming it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import hcl2
from hcl2.utils import SerializationOptions

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MODULES = INFRA / "modules"
ENVS_DIR = INFRA / "envs"
# Every environment folder (one with a main.tf), so that a third one, copied
# from dev, is checked like dev and prod without touching the tests.
ENVS = tuple(sorted(p.name for p in ENVS_DIR.iterdir() if (p / "main.tf").is_file()))
# The one module every environment calls (module "floe" in envs/<env>/main.tf).
STACK = MODULES / "floe_stack"
STACK_CALL = "floe"

# Heredocs become ordinary strings (indentation of <<- removed), so that they
# evaluate like any other template.
_OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, preserve_heredocs=False)

# Data source attributes a plan would read from AWS: stand-ins of the right shape.
PLANNED = {
    ("aws_caller_identity", "account_id"): "123456789012",
    ("aws_region", "region"): "eu-west-1",
    ("aws_partition", "partition"): "aws",
    ("aws_ecr_repository", "repository_url"): "123456789012.dkr.ecr.eu-west-1.amazonaws.com/floe",
}


class Unresolved(Exception):
    """An expression the evaluator cannot resolve offline."""


class NotLiteral(Exception):
    """A value that was expected to be written as a literal is an expression."""


def unquote(label: str) -> str:
    """A block label or key as written, without python-hcl2's quotes."""
    return label[1:-1] if len(label) >= 2 and label[0] == label[-1] == '"' else label


def is_expression(value) -> bool:
    return isinstance(value, str) and value.startswith("${") and value.endswith("}")


def literal(value):
    """The Python value of a literal (string, number, bool, null, list, object)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, list):
        return [literal(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): literal(v) for k, v in value.items()}
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' and "${" not in value:
        return _unescape(value[1:-1])
    raise NotLiteral(f"expected a literal, found the expression {value!r}")


def written(value):
    """A value as written: literal strings without their quotes (templates keep
    their `${...}`), expressions as `${...}`, lists item by item."""
    if isinstance(value, list):
        return [written(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return _unescape(value[1:-1])
    return value


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), text)


def blocks(body: dict, name: str) -> list[dict]:
    """The nested blocks `name { ... }` of a block body (empty when none)."""
    found = body.get(name, [])
    return found if isinstance(found, list) else [found]


def block(body: dict, name: str) -> dict:
    """The one nested block `name { ... }` of a block body."""
    found = blocks(body, name)
    assert len(found) == 1, f"expected one `{name}` block, found {len(found)}"
    return found[0]


@dataclass
class Config:
    """Every .tf file of one folder, merged, with labels unquoted."""

    folder: Path
    resources: dict[str, dict[str, dict]] = field(default_factory=dict)
    data: dict[str, dict[str, dict]] = field(default_factory=dict)
    variables: dict[str, dict] = field(default_factory=dict)
    locals: dict[str, object] = field(default_factory=dict)
    modules: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    providers: dict[str, dict] = field(default_factory=dict)
    terraform: list[dict] = field(default_factory=list)

    def resource(self, kind: str, name: str) -> dict:
        assert name in self.resources.get(kind, {}), f"{self.folder}: no resource {kind}.{name}"
        return self.resources[kind][name]

    def text(self) -> str:
        """The folder's .tf files as written (for what the parser drops: comments)."""
        return "\n".join(p.read_text() for p in sorted(self.folder.glob("*.tf")))


def _two_labels(entries: list[dict], into: dict[str, dict[str, dict]]) -> None:
    for entry in entries:
        for kind, named in entry.items():
            for name, body in named.items():
                into.setdefault(unquote(kind), {})[unquote(name)] = body


def _one_label(entries: list[dict], into: dict[str, dict]) -> None:
    for entry in entries:
        for name, body in entry.items():
            into[unquote(name)] = body


_CACHE: dict[Path, Config] = {}


def load(folder: Path) -> Config:
    """All .tf files of `folder` (not its subfolders), parsed once per run."""
    folder = folder.resolve()
    if folder in _CACHE:
        return _CACHE[folder]
    files = sorted(folder.glob("*.tf"))
    assert files, f"no .tf files in {folder}"
    config = Config(folder)
    for path in files:
        with path.open() as f:
            parsed = hcl2.load(f, serialization_options=_OPTIONS)
        _two_labels(parsed.get("resource", []), config.resources)
        _two_labels(parsed.get("data", []), config.data)
        _one_label(parsed.get("variable", []), config.variables)
        _one_label(parsed.get("module", []), config.modules)
        _one_label(parsed.get("output", []), config.outputs)
        _one_label(parsed.get("provider", []), config.providers)
        for entry in parsed.get("locals", []):
            config.locals.update(entry)
        config.terraform.extend(parsed.get("terraform", []))
    _CACHE[folder] = config
    return config


def load_assignments(path: Path) -> dict[str, object]:
    """A file of `name = value` lines (backend.hcl) as written (values in
    python-hcl2's form)."""
    with path.open() as f:
        return hcl2.load(f, serialization_options=_OPTIONS)


def environment_values(env: str) -> dict[str, object]:
    """The arguments envs/<env>/main.tf passes to the stack, as Python values.
    They must be literals: an environment's values are written, not computed
    (NotLiteral otherwise)."""
    call = load(ENVS_DIR / env).modules[STACK_CALL]
    return {name: literal(value) for name, value in call.items() if name not in _META_ARGUMENTS}


def all_folders() -> list[Path]:
    """Every folder of .tf files under infra/: the modules and the environments."""
    return sorted({p.parent for p in tf_files()})


def tf_files() -> list[Path]:
    """Every .tf file under infra/, not those `terraform init` downloads."""
    return sorted(p for p in INFRA.rglob("*.tf") if ".terraform" not in p.parts)


# --- The evaluator ----------------------------------------------------------------


def _tostring(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, str)):
        return str(value)
    raise Unresolved(f"tostring() of {value!r}")


FUNCTIONS = {
    "tostring": _tostring,
    "floor": math.floor,
    "ceil": math.ceil,
    "max": max,
    "min": min,
    "lower": str.lower,
    "upper": str.upper,
    "true": True,
    "false": False,
    "null": None,
}

_REFERENCE = re.compile(
    r"\bdata\.\w+\.\w+\.\w+"
    r"|\bmodule\.\w+\.\w+"
    r"|\b(?:var|local)\.\w+"
    r"|\baws_\w+\.\w+\.\w+"
)
_META_ARGUMENTS = {"source", "version", "providers", "depends_on", "count", "for_each"}


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing an interpolation whose body starts at `start`."""
    depth, i, quoted = 1, start, False
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise Unresolved(f"unbalanced interpolation in {text!r}")


class Scope:
    """One module instance: a folder and the arguments it was called with."""

    def __init__(self, folder: Path, arguments: dict, caller: Scope | None = None):
        self.config = load(folder)
        self.arguments = arguments
        # Arguments are expressions of the caller's scope.
        self.caller = caller or self

    @classmethod
    def root(cls, env: str) -> Scope:
        """The root module of infra/envs/<env> (it has no variables)."""
        return cls(ENVS_DIR / env, {})

    @classmethod
    def stack(cls, env: str) -> Scope:
        """modules/floe_stack as infra/envs/<env> calls it."""
        return cls.root(env).module(STACK_CALL)

    def module(self, name: str) -> Scope:
        """The instance of module `name` called from this scope."""
        assert name in self.config.modules, f"{self.config.folder}: no module {name}"
        call = self.config.modules[name]
        folder = self.config.folder / literal(call["source"])
        arguments = {k: v for k, v in call.items() if k not in _META_ARGUMENTS}
        return Scope(folder, arguments, caller=self)

    def var(self, name: str):
        if name in self.arguments:
            return self.caller.evaluate(self.arguments[name])
        declared = self.config.variables.get(name)
        if declared is None:
            raise Unresolved(f"{self.config.folder}: no variable {name}")
        if "default" not in declared:
            raise Unresolved(f"{self.config.folder}: variable {name} has no value and no default")
        return self.evaluate(declared["default"])

    def local(self, name: str):
        if name not in self.config.locals:
            raise Unresolved(f"{self.config.folder}: no local {name}")
        return self.evaluate(self.config.locals[name])

    def reference(self, ref: str):
        parts = ref.split(".")
        if parts[0] == "var":
            return self.var(parts[1])
        if parts[0] == "local":
            return self.local(parts[1])
        if parts[0] == "module":
            child = self.module(parts[1])
            outputs = child.config.outputs
            if parts[2] not in outputs:
                raise Unresolved(f"{child.config.folder}: no output {parts[2]}")
            return child.evaluate(outputs[parts[2]]["value"])
        if parts[0] == "data":
            key = (parts[1], parts[3])
            if key not in PLANNED:
                raise Unresolved(f"{ref}: only AWS knows it; add a stand-in to PLANNED")
            return PLANNED[key]
        kind, name, attribute = parts
        body = self.config.resources.get(kind, {}).get(name)
        if body is None or attribute not in body:
            raise Unresolved(f"{self.config.folder}: {ref} is computed by AWS")
        return self.evaluate(body[attribute])

    def evaluate(self, value):
        """The value of `value` (as python-hcl2 gives it) in this scope."""
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, list):
            return [self.evaluate(v) for v in value]
        if isinstance(value, dict):
            return {unquote(k): self.evaluate(v) for k, v in value.items()}
        if is_expression(value) and _closing_brace(value, 2) == len(value) - 1:
            return self.expression(value[2:-1])
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return self.template(value[1:-1])
        raise Unresolved(f"cannot evaluate {value!r}")

    def template(self, body: str) -> str:
        """A quoted string with `${...}` interpolations."""
        out, i = [], 0
        while i < len(body):
            if body.startswith("$${", i):
                out.append("${")
                i += 3
            elif body.startswith("${", i):
                end = _closing_brace(body, i + 2)
                value = self.expression(body[i + 2 : end])
                if value is None:
                    raise Unresolved(f"null interpolated into {body!r}")
                out.append(_tostring(value))
                i = end + 1
            elif body[i] == "\\" and i + 1 < len(body):
                out.append(_unescape(body[i : i + 2]))
                i += 2
            else:
                out.append(body[i])
                i += 1
        return "".join(out)

    def expression(self, text: str):
        """References, arithmetic, one conditional and FUNCTIONS, evaluated
        as Python."""
        values: list = []

        def swap(match: re.Match) -> str:
            values.append(self.reference(match.group(0)))
            return f"_ref[{len(values) - 1}]"

        python = _REFERENCE.sub(swap, text)
        # One conditional, `cond ? a : b` (strings in it hold no ` ? ` or ` : `).
        conditional = re.fullmatch(r"\s*(.+?)\s+\?\s+(.+?)\s+:\s+(.+?)\s*", python)
        if conditional:
            cond, then, otherwise = conditional.groups()
            python = f"(({then}) if ({cond}) else ({otherwise}))"
        try:
            return eval(python, {"__builtins__": {}}, {"_ref": values, **FUNCTIONS})  # noqa: S307
        except Unresolved:
            raise
        except Exception as e:
            raise Unresolved(f"cannot evaluate `{text}` offline ({e})") from e
