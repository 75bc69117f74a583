"""A schema chain for evolution tests: the shipped first file (v1), then v2
(promote `quantity` int and `device` struct, rename `event_subtype` to
`event_action`) and v3 (widen `quantity` to long, drop `device`), with events
that carry those fields.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOW = int(time.time()) - 3_600
NAMES = ["shop:order:done", "shop:cart", "page:view:seen"]


def v1() -> dict:
    return json.loads((ROOT / "schemas/events/0001-initial.json").read_text())


def v2() -> dict:
    s = v1()
    for f in s["fields"]:
        if f["name"] == "event_subtype":
            f["name"] = "event_action"
    s["fields"] += [
        {"id": 12, "name": "quantity", "required": False, "type": "int", "doc": "Items ordered"},
        {
            "id": 13,
            "name": "device",
            "required": False,
            "type": {
                "type": "struct",
                "fields": [
                    {"id": 14, "name": "os", "required": True, "type": "string"},
                    {"id": 15, "name": "mobile", "required": False, "type": "boolean"},
                ],
            },
        },
    ]
    return s


def v3() -> dict:
    s = v2()
    s["fields"] = [f for f in s["fields"] if f["name"] != "device"]
    for f in s["fields"]:
        if f["name"] == "quantity":
            f["type"] = "long"
    return s


def write_chain(schemas: Path, *files: tuple[str, dict]) -> Path:
    """A schemas/ folder: the shipped rejected-table chain and `files` for events."""
    if not (schemas / "events_rejected").exists():
        shutil.copytree(ROOT / "schemas/events_rejected", schemas / "events_rejected")
    (schemas / "events").mkdir(parents=True, exist_ok=True)
    for name, schema in files:
        (schemas / "events" / name).write_text(json.dumps(schema, indent=2) + "\n")
    return schemas


def event(phase: str, i: int, quantity) -> dict:
    return {
        "event_uuid": f"{phase}-{i:04d}",
        "event_name": NAMES[i % 3],
        "created_at": NOW - i * 37 + 0.5,
        "quantity": quantity,
        "device": {"os": ["ios", "android"][i % 2], "mobile": i % 4 == 0},
        "note": f"{phase}{i}",
    }


def write_events(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events))
    return path
