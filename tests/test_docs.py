"""The documentation holds together: the README stays a page a user reads,
every relative link lands on a file and heading that exist, and the README's
settings table says what `floe run --help` says.

Fast and offline: it reads Markdown files and runs `floe run --help` once
(the binary from `FLOE_BIN`, as every end-to-end test).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from pathlib import Path

import pytest

from support import floe

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 300


def documents() -> list[Path]:
    """The Markdown files whose links are checked."""
    return [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "infra" / "README.md"]


def rel(path: Path, root: Path = ROOT) -> str:
    return path.relative_to(root).as_posix()


# --- Markdown, as GitHub reads it --------------------------------------------

FENCE = re.compile(r"^ {0,3}(```|~~~)")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fence = [], None
    for number, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            out.append((number, line))
    return out


def blank_code_spans(text: str) -> str:
    """`text` with every code span blanked out, its line breaks kept, so that
    offsets and line numbers stay where they were."""
    return re.sub(r"(`+)(.+?)\1", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: formatting dropped, lowercase,
    punctuation but `-` and `_` removed, each space a `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@functools.cache
def anchors(path: Path) -> frozenset[str]:
    """Every heading anchor of a Markdown file; a repeated heading gets
    `-1`, `-2`, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        m = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


INLINE_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")


def paragraphs(path: Path) -> list[tuple[int, str]]:
    """(first line number, text) of each run of non-blank lines outside
    fenced code: a link's text may wrap."""
    out: list[tuple[int, str]] = []
    last = None
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        if not line.strip():
            last = None
            continue
        if last is not None and number == last + 1:
            out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
        else:
            out.append((number, line))
        last = number
    return out


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference
    definition outside code."""
    out = []
    for first, text in paragraphs(path):
        for offset, line in enumerate(text.split("\n")):
            m = REFERENCE_DEF.match(line)
            if m:
                out.append((first + offset, m.group(1)))
        text = blank_code_spans(text)
        for m in INLINE_LINK.finditer(text):
            out.append((first + text.count("\n", 0, m.start()), m.group(1)))
    return out


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)) or target.startswith("//")


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for number, target in links(path):
        if is_external(target):
            continue
        where = f"{rel(path, root)}:{number}: link ({target})"
        file_part, _, anchor = target.partition("#")
        if file_part:
            dest = (path.parent / file_part).resolve()
            if not dest.exists():
                problems.append(f"{where}: {file_part} does not exist")
                continue
            try:
                dest.relative_to(root)
            except ValueError:
                problems.append(f"{where}: {file_part} is outside the repository")
                continue
        else:
            dest = path
        if anchor:
            if dest.is_dir() or dest.suffix.lower() != ".md":
                problems.append(f"{where}: #{anchor} points into {rel(dest, root)}, which is not a Markdown file")
            elif anchor not in anchors(dest):
                problems.append(f"{where}: {rel(dest, root)} has no heading with the anchor #{anchor}")
    return problems


# --- The tests ---------------------------------------------------------------


def test_the_readme_is_shorter_than_300_lines():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines < README_MAX_LINES, (
        f"README.md has {lines} lines; keep it under {README_MAX_LINES} and move details to docs/"
    )


@pytest.mark.parametrize("path", documents(), ids=rel)
def test_every_relative_link_resolves(path):
    assert path.exists(), f"{rel(path)} is missing"
    problems = broken_links(path)
    assert not problems, "broken links:\n  " + "\n  ".join(problems)


def test_the_slug_rules_are_githubs():
    assert slug("Production: container, Terraform, operations") == "production-container-terraform-operations"
    assert slug("What `floe_stack` does") == "what-floe_stack-does"
    assert slug("Kinesis to Glue and S3") == "kinesis-to-glue-and-s3"
    assert slug("Scale-out") == "scale-out"
    assert slug("Targets, and where Floe stands") == "targets-and-where-floe-stands"


def test_a_broken_link_is_named_with_its_file_and_line(tmp_path):
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "b.md").write_text("# B\n\n## Some part\n")
    (tmp_path / "elsewhere.md").touch()
    doc = repo / "a.md"
    doc.write_text(
        "# A\n\n"
        "See [the part](docs/b.md#some-part) and [a wrapped\nlabel](docs/b.md#no-such-part).\n"
        "`[code](missing.md)` is not a link; [this](missing.md) is, and [up](#a) is fine.\n\n"
        "```sh\n[nor](this.md)\n```\n[out](../elsewhere.md)\n"
    )
    assert broken_links(doc, root=repo) == [
        "a.md:3: link (docs/b.md#no-such-part): docs/b.md has no heading with the anchor #no-such-part",
        "a.md:5: link (missing.md): missing.md does not exist",
        "a.md:10: link (../elsewhere.md): ../elsewhere.md is outside the repository",
    ]


def test_a_repeated_heading_gets_a_numbered_anchor(tmp_path):
    doc = tmp_path / "a.md"
    doc.write_text("# Title\n## Notes\n```sh\n# not a heading\n```\n## Notes\n## Notes\n")
    assert anchors(doc) == {"title", "notes", "notes-1", "notes-2"}


# --- The settings table against `floe run --help` ---------------------------


def help_text(*args: str) -> str:
    binary = Path(floe.BIN)
    assert binary.exists(), f"no Floe binary at {binary}: build it (cargo build) or set FLOE_BIN"
    # No FLOE_* in the environment: clap would print their values in the help.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOE_")}
    proc = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, f"floe {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


def help_options(text: str) -> dict[str, dict]:
    """FLOE_* variable -> {"flags": {...}, "default": str | None} from clap's
    help; an option's entry runs from its flags' line to the next one."""
    entries: list[list[str]] = []
    for line in text.splitlines():
        if re.match(r"^ {0,8}-", line):
            entries.append([line])
        elif entries and line.strip():
            entries[-1].append(line)
    out = {}
    for lines in entries:
        entry = " ".join(" ".join(lines).split())
        env = re.search(r"\[env: (FLOE_[A-Z0-9_]+)=[^\]]*\]", entry)
        if not env:
            continue
        # The flags' line: `-i, --input <INPUT>...`, then maybe the help after two spaces.
        head = re.split(r"\s{2,}", lines[0].strip())[0]
        head = re.sub(r"<[^>]*>(\.\.\.)?", "", head)
        flags = set(re.findall(r"(?<![\w-])(--?[a-z0-9][a-z0-9-]*)", head))
        default = re.search(r"\[default: ([^\]]*)\]", entry)
        out[env.group(1)] = {"flags": flags, "default": default.group(1).strip() if default else None}
    return out


def settings_table() -> dict[str, dict]:
    """FLOE_* variable -> {"flags", "toml", "default"} from the README's
    settings table: the table whose header has `environment` and `default`."""
    lines = [line for _, line in prose_lines(README.read_text(encoding="utf-8"))]

    def cells(row: str) -> list[str]:
        return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]

    start = next((i for i, line in enumerate(lines)
                  if line.startswith("|") and {"environment", "default"} <= set(cells(line))), None)
    assert start is not None, "README.md has no settings table (a table with `environment` and `default` columns)"
    header = cells(lines[start])
    out = {}
    for row in lines[start + 2:]:
        if not row.startswith("|"):
            break
        cell = dict(zip(header, cells(row)))
        for name in re.findall(r"FLOE_[A-Z0-9_]+", cell.get("environment", "")):
            out[name] = {
                "flags": set(re.findall(r"`(--?[a-z0-9][a-z0-9-]*)`", cell.get("flag", ""))),
                "toml": " ".join(re.findall(r"`([a-z0-9_]+)`", cell.get("TOML key", ""))),
                "default": cell.get("default", ""),
            }
    return out


def same_default(table: str, shown: str) -> bool:
    """The table's default says what --help's does: equal once backticks and
    case are dropped, or equal to its first clause (`off, this task reads
    every shard` is `off`)."""
    table = table.replace("`", "").strip().lower()
    shown = shown.strip().lower()
    return table == shown or table == shown.split(",")[0].strip()


@functools.cache
def run_help() -> dict[str, dict]:
    return help_options(help_text("run", "--help"))


def test_the_settings_table_lists_exactly_the_variables_of_floe_run():
    shown, table = run_help(), settings_table()
    assert shown, "found no [env: FLOE_...] in `floe run --help`"
    missing = sorted(set(shown) - set(table))
    extra = sorted(set(table) - set(shown))
    problems = [f"{name} is a `floe run` setting ({', '.join(sorted(shown[name]['flags']))}) missing from README.md's settings table" for name in missing]
    problems += [f"{name} is in README.md's settings table but not in `floe run --help`" for name in extra]
    assert not problems, "\n".join(problems)


def test_the_settings_table_has_the_flags_keys_and_defaults_of_floe_run():
    shown, table = run_help(), settings_table()
    problems = []
    for name in sorted(set(shown) & set(table)):
        h, t = shown[name], table[name]
        if t["flags"] != h["flags"]:
            problems.append(f"{name}: README.md says {sorted(t['flags'])}, --help says {sorted(h['flags'])}")
        longs = [f for f in h["flags"] if f.startswith("--")]
        if t["toml"] and longs and t["toml"] != longs[0][2:].replace("-", "_"):
            problems.append(f"{name}: TOML key `{t['toml']}` is not {longs[0]} in snake_case")
        if h["default"] is not None and not same_default(t["default"], h["default"]):
            problems.append(f"{name}: README.md's default is {t['default']!r}, --help says [default: {h['default']}]")
    assert not problems, "README.md's settings table disagrees with `floe run --help`:\n  " + "\n  ".join(problems)


def test_the_help_parser_reads_wrapped_entries():
    text = """Options:
      --lease-table <LEASE_TABLE>
          DynamoDB table of shard leases [default: off,
          this task reads every shard] [env: FLOE_LEASE_TABLE=]
  -i, --input <INPUT>...
          Input files [env:
          FLOE_INPUT=x.jsonl]
      --drain
          Stop at the tip [env: FLOE_DRAIN=]
      --check-config
          Check the settings
"""
    assert help_options(text) == {
        "FLOE_LEASE_TABLE": {"flags": {"--lease-table"}, "default": "off, this task reads every shard"},
        "FLOE_INPUT": {"flags": {"-i", "--input"}, "default": None},
        "FLOE_DRAIN": {"flags": {"--drain"}, "default": None},
    }
    assert same_default("off", "off, this task reads every shard")
    assert same_default("`128MiB`", "128MiB")
    assert not same_default("`64MiB`", "128MiB")
