"""What Floe's code says about its metrics, read from src/ for the structure
tests: the CloudWatch metrics its EMF lines carry (name, unit and dimension
names), the samples its /metrics renders (name and label names), the stages
that can be restarted, the reject reason codes and the metadata size it warns
at.

This is Rust read with regular expressions, so every reader checks itself:
each `emf(` call must yield metrics, and every `("Name", "Unit", value)`
tuple of the module must land in some EMF line. A change of shape in the
code fails here loudly rather than leaving a test that checks nothing. The
live run of test_infra_dashboards.py then holds the result against the EMF
lines the binary prints.
"""

from __future__ import annotations

import re

from infra_hcl import REPO

SRC = REPO / "src"
METRICS_RS = SRC / "telemetry" / "metrics.rs"
EMF_RS = SRC / "telemetry" / "emf.rs"
PROMETHEUS_RS = SRC / "telemetry" / "prometheus.rs"
DECODE_RS = SRC / "event" / "decode.rs"

# The units of CloudWatch's MetricDatum (the ones a count, a duration or a
# size could take): an EMF line with another unit is refused.
CLOUDWATCH_UNITS = {"Count", "Seconds", "Milliseconds", "Microseconds", "Bytes", "Kilobytes", "Megabytes", "Percent", "None"}
# One metric value of an EMF line: ("Name", "Unit", value).
_VALUE = re.compile(r'\(\s*"([A-Z][A-Za-z]+)",\s*"([A-Za-z]+)",')
# One dimension or label: ("Name", value).
_PAIR = re.compile(r'\(\s*"([A-Za-z_]+)",')


class _Code:
    """A Rust file without its `#[cfg(test)]` module (the tests call the same
    functions with made-up values): `text` as written, and `blank`, the same
    text with comments, string contents and char literals blanked out, so
    that brackets and commas in `blank` are Rust's own. Offsets agree."""

    def __init__(self, path):
        self.text = path.read_text().split("#[cfg(test)]", 1)[0]
        self.blank = _blank(self.text)

    def closing(self, open_at: int) -> int:
        """Index of the bracket closing the one at `open_at`."""
        pairs = {"(": ")", "[": "]", "{": "}"}
        stack = []
        for i in range(open_at, len(self.blank)):
            c = self.blank[i]
            if c in pairs:
                stack.append(pairs[c])
            elif c in ")]}":
                assert stack and stack.pop() == c, f"unbalanced {c!r} at {i}"
                if not stack:
                    return i
        raise AssertionError(f"no closing bracket for the one at {open_at}")

    def arguments(self, open_at: int) -> list[tuple[int, str]]:
        """(offset, text) of each top-level, comma-separated argument of the
        call whose `(` is at `open_at`."""
        end = self.closing(open_at)
        args, depth, start = [], 0, open_at + 1
        for i in range(open_at + 1, end + 1):
            c = self.blank[i]
            if c in "([{" :
                depth += 1
            elif c in ")]}" and i < end:
                depth -= 1
            elif (c == "," and depth == 0) or i == end:
                raw = self.text[start:i]
                if raw.strip():
                    args.append((start + len(raw) - len(raw.lstrip()), raw.strip()))
                start = i + 1
        return args

    def functions(self) -> list[tuple[str, int, int]]:
        """(name, start, end) of every `fn` with a body."""
        return [
            (m[1], m.start(), self.closing(m.end() - 1))
            for m in re.finditer(r"\bfn (\w+)\b[^;{]*\{", self.blank)
        ]


def _blank(text: str) -> str:
    out, i, n = list(text), 0, len(text)

    def wipe(a: int, b: int, keep: str = " ") -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = keep

    while i < n:
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            wipe(i, end)
            i = end
        elif text.startswith("/*", i):
            end = text.index("*/", i) + 2
            wipe(i, end)
            i = end
        elif (raw := re.match(r'r(#*)"', text[i:])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + raw[1]
            end = text.index(close, i + raw.end()) + len(close)
            wipe(i + raw.end(), end - len(close), "x")
            i = end
        elif text[i] == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            wipe(i + 1, j, "x")
            i = j + 1
        elif text[i] == "'":
            # A char literal ('x', '\n', '\''), or a lifetime ('a, 'static).
            if text[i + 1] == "\\":
                end = text.index("'", i + 3) + 1
            elif i + 2 < n and text[i + 2] == "'":
                end = i + 3
            else:
                i += 1
                continue
            wipe(i, end, "x")
            i = end
        else:
            i += 1
    return "".join(out)


def emf_metrics() -> dict[str, set[tuple[str, ...]]]:
    """Every CloudWatch metric Floe's EMF lines carry: name -> the dimension
    name sets it is sent with (sorted tuples; one metric may be sent with
    several, e.g. Rejected by Table, and by Table and Reason)."""
    code = _Code(EMF_RS)
    functions = code.functions()
    calls = [m.end() - 1 for m in re.finditer(r"(?<!fn )\bemf\(", code.blank)]
    assert calls, f"no emf( call in {EMF_RS}"
    found: dict[str, set[tuple[str, ...]]] = {}
    units: dict[str, str] = {}
    placed: set[int] = set()  # offsets of the value tuples some call sends
    for open_at in calls:
        args = code.arguments(open_at)
        assert len(args) == 4, f"emf( with {len(args)} arguments: {args}"
        dimensions = tuple(sorted(_PAIR.findall(args[1][1])))
        assert dimensions, f"an emf( call without dimensions: {args[1][1]}"
        values_at, values_text = args[2]
        if values_text.startswith("&["):
            # The values are written in the call.
            values = [(m[1], m[2], values_at + m.start()) for m in _VALUE.finditer(values_text)]
        else:
            # The values are a vector the calling function builds: its
            # tuples outside any emf( call.
            assert re.fullmatch(r"&\w+", values_text), f"emf( values neither written in the call nor a variable: {values_text}"
            fn_start, fn_end = next((s, e) for _, s, e in functions if s < open_at < e)
            inside = [(c, code.closing(c)) for c in calls if fn_start < c < fn_end]
            values = [
                (m[1], m[2], fn_start + m.start())
                for m in _VALUE.finditer(code.text[fn_start:fn_end])
                if not any(a <= fn_start + m.start() <= b for a, b in inside)
            ]
        assert values, f"an emf( call whose metrics cannot be found: {values_text}"
        for metric, unit, offset in values:
            assert unit in CLOUDWATCH_UNITS, f"{metric}: {unit} is not a CloudWatch unit"
            assert units.setdefault(metric, unit) == unit, f"{metric} is sent in two units"
            found.setdefault(metric, set()).add(dimensions)
            placed.add(offset)
    # Every value tuple of the module belongs to some EMF line.
    everywhere = {m.start(): m[1] for m in _VALUE.finditer(code.text)}
    stray = sorted(name for at, name in everywhere.items() if at not in placed)
    assert not stray, f"metric values the EMF reader could not place in a line: {stray}"
    return found


def render_labels() -> dict[str, set[str]]:
    """Every sample name written literally in `fn render` (the /metrics
    text) -> the label names it is written with."""
    code = _Code(PROMETHEUS_RS)
    start, end = next((s, e) for name, s, e in code.functions() if name == "render")
    out: dict[str, set[str]] = {}
    for match in re.finditer(r"\bout\.(sample|single)\(", code.blank[start:end]):
        args = code.arguments(start + match.end() - 1)
        name = re.fullmatch(r'"([a-z_:][a-z0-9_:]*)"', args[0][1])
        if name is None:
            continue  # a computed name (the histogram's series, a loop's)
        labels = set(_PAIR.findall(args[1][1])) if match[1] == "sample" else set()
        out.setdefault(name[1], set()).update(labels)
    assert out, "no literal sample in fn render"
    return out


def restartable_stages() -> set[str]:
    """RESTARTABLE_STAGES: the stages whose restarts Floe counts."""
    match = re.search(r"pub const RESTARTABLE_STAGES: \[&str; (\d+)\] = \[([^\]]*)\];", _Code(METRICS_RS).text)
    assert match, "RESTARTABLE_STAGES changed shape in metrics.rs"
    stages = set(re.findall(r'"([^"]+)"', match[2]))
    assert len(stages) == int(match[1]), match[0]
    return stages


def reject_reasons() -> set[str]:
    """The reason codes of `RejectReason::code`."""
    code = _Code(DECODE_RS)
    match = re.search(r"\bfn code\(self\) -> &'static str \{", code.text)
    assert match, "RejectReason::code changed shape in decode.rs"
    body = code.text[match.end() : code.closing(match.end() - 1)]
    return set(re.findall(r'=> "([a-z_]+)"', body))


def metadata_warn_bytes() -> int:
    """METADATA_WARN_BYTES: the metadata size Floe logs a warning at."""
    match = re.search(r"pub const METADATA_WARN_BYTES: u64 = (\d+)(?: << (\d+))?;", _Code(METRICS_RS).text)
    assert match, "METADATA_WARN_BYTES changed shape in metrics.rs"
    return int(match[1]) << int(match[2] or 0)
