//! Every allowed and every refused step, each refusal checked for its message.

use serde_json::{Value, json};

use crate::table::TableKind;
use crate::table::schema::{SchemaChain, SchemaFile};

const INITIAL: &str = include_str!("../../../schemas/events/0001-initial.json");

/// The shipped first file plus typed columns of every kind: the base of
/// every step below.
fn base() -> Value {
    let mut v: Value = serde_json::from_str(INITIAL).unwrap();
    let fields = v["fields"].as_array_mut().unwrap();
    fields.extend([
        json!({"id": 12, "name": "amount", "required": false, "type": "float"}),
        json!({"id": 13, "name": "qty", "required": false, "type": "int"}),
        json!({"id": 14, "name": "price", "required": false, "type": "decimal(9, 2)"}),
        json!({"id": 15, "name": "address", "required": false, "type": {
            "type": "struct", "fields": [
                {"id": 16, "name": "street", "required": true, "type": "string"},
                {"id": 17, "name": "zip", "required": false, "type": "string"}]}}),
        json!({"id": 18, "name": "tags", "required": false, "type": {
            "type": "list", "element-id": 19, "element-required": false, "element": "string"}}),
        json!({"id": 20, "name": "note", "required": false, "type": "string"}),
    ]);
    v
}

fn file(number: u32, v: &Value) -> SchemaFile {
    let text = v.to_string();
    SchemaFile {
        origin: format!("schemas/events/{number:04}-step.json"),
        name: format!("{number:04}-step.json"),
        number,
        digest: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes())),
        schema: serde_json::from_str(&text).unwrap(),
    }
}

fn field<'a>(v: &'a mut Value, name: &str) -> &'a mut Value {
    v["fields"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["name"] == name)
        .unwrap()
}

fn add(v: &mut Value, f: Value) {
    v["fields"].as_array_mut().unwrap().push(f);
}

fn drop_field(v: &mut Value, name: &str) {
    v["fields"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != name);
}

fn nested<'a>(v: &'a mut Value, parent: &str) -> &'a mut Vec<Value> {
    field(v, parent)["type"]["fields"].as_array_mut().unwrap()
}

/// Checks the chain base -> `edit(base)`.
fn step(edit: impl FnOnce(&mut Value)) -> Result<Vec<String>, String> {
    let from = base();
    let mut to = base();
    edit(&mut to);
    // Some refusals come from iceberg's own parser, as `floe` reports them.
    if let Err(e) = serde_json::from_str::<iceberg::spec::Schema>(&to.to_string()) {
        return Err(format!(
            "schemas/events/0002-step.json: not an Iceberg schema: {e}"
        ));
    }
    SchemaChain::check(TableKind::Events, vec![file(1, &from), file(2, &to)])
        .map(|chain| chain.steps[0].iter().map(ToString::to_string).collect())
        .map_err(|e| e.to_string())
}

type Edit = fn(&mut Value);

#[test]
fn allowed_steps_list_their_changes() {
    let cases: &[(&str, Edit, &[&str])] = &[
        (
            "add an optional column",
            |v| {
                add(
                    v,
                    json!({"id": 21, "name": "country", "required": false, "type": "string"}),
                )
            },
            &["add country string (id 21)"],
        ),
        (
            "add an optional nested field",
            |v| {
                nested(v, "address")
                    .push(json!({"id": 21, "name": "city", "required": false, "type": "string"}))
            },
            &["add address.city string (id 21)"],
        ),
        (
            "add a struct with a required field inside",
            |v| {
                add(
                    v,
                    json!({"id": 21, "name": "geo", "required": false, "type": {
                    "type": "struct", "fields": [
                        {"id": 22, "name": "lat", "required": true, "type": "double"}]}}),
                )
            },
            &["add geo struct (id 21)"],
        ),
        (
            "rename a typed column",
            |v| field(v, "qty")["name"] = json!("quantity"),
            &["rename qty to quantity"],
        ),
        (
            "rename a nested field",
            |v| nested(v, "address")[1]["name"] = json!("postcode"),
            &["rename address.zip to postcode"],
        ),
        (
            "rename a column Floe fills by id",
            |v| field(v, "event_subtype")["name"] = json!("event_action"),
            &["rename event_subtype to event_action"],
        ),
        (
            "widen int to long",
            |v| field(v, "qty")["type"] = json!("long"),
            &["widen qty int to long"],
        ),
        (
            "widen float to double",
            |v| field(v, "amount")["type"] = json!("double"),
            &["widen amount float to double"],
        ),
        (
            "widen a decimal's precision",
            |v| field(v, "price")["type"] = json!("decimal(12, 2)"),
            &["widen price decimal(9, 2) to decimal(12, 2)"],
        ),
        (
            "make a required field optional",
            |v| field(v, "_source_position")["required"] = json!(false),
            &["make _source_position optional"],
        ),
        (
            "make a required nested field optional",
            |v| nested(v, "address")[0]["required"] = json!(false),
            &["make address.street optional"],
        ),
        (
            "change a doc",
            |v| field(v, "event_name")["doc"] = json!("The event's full name"),
            &["change the doc of event_name"],
        ),
        (
            "change the doc of the identifier field",
            |v| field(v, "event_uuid")["doc"] = json!("The key"),
            &["change the doc of event_uuid"],
        ),
        ("drop a column", |v| drop_field(v, "note"), &["drop note"]),
        (
            "drop a nested field",
            |v| {
                nested(v, "address").pop();
            },
            &["drop address.zip"],
        ),
        (
            "drop a struct with its fields",
            |v| drop_field(v, "address"),
            &["drop address"],
        ),
        (
            "drop a column Floe fills by id",
            |v| drop_field(v, "_source_id"),
            &["drop _source_id"],
        ),
    ];
    for (what, edit, want) in cases {
        let got = step(edit).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
        assert_eq!(got, *want, "{what}");
    }
}

#[test]
fn refused_steps_name_the_file_the_field_and_the_rule() {
    let cases: &[(&str, Edit, &str)] = &[
        (
            "change a field's id",
            |v| field(v, "note")["id"] = json!(21),
            "field note changed its id from 20 to 21",
        ),
        (
            "narrow long to int",
            |v| field(v, "_content_hash")["type"] = json!("int"),
            "_content_hash (id 11) cannot change type from long to int",
        ),
        (
            "narrow a decimal",
            |v| field(v, "price")["type"] = json!("decimal(7, 2)"),
            "price (id 14) cannot change type from decimal(9, 2) to decimal(7, 2)",
        ),
        (
            "change a decimal's scale",
            |v| field(v, "price")["type"] = json!("decimal(12, 3)"),
            "price (id 14) cannot change type from decimal(9, 2) to decimal(12, 3)",
        ),
        (
            "narrow double to float",
            |v| field(v, "created_at")["type"] = json!("float"),
            "created_at (id 5) cannot change type from double to float",
        ),
        (
            "change int to string",
            |v| field(v, "qty")["type"] = json!("string"),
            "qty (id 13) cannot change type from int to string: only int to long",
        ),
        (
            "change a primitive to a struct",
            |v| {
                field(v, "note")["type"] = json!({"type": "struct", "fields": [
                    {"id": 21, "name": "text", "required": false, "type": "string"}]})
            },
            "note (id 20) cannot change type from string to struct",
        ),
        (
            "add a required column",
            |v| {
                add(
                    v,
                    json!({"id": 21, "name": "country", "required": true, "type": "string"}),
                )
            },
            "new field country is required",
        ),
        (
            "add a required nested field",
            |v| {
                nested(v, "address")
                    .push(json!({"id": 21, "name": "city", "required": true, "type": "string"}))
            },
            "new field address.city is required",
        ),
        (
            "make an optional column required",
            |v| field(v, "amount")["required"] = json!(true),
            "amount (id 12) cannot become required",
        ),
        (
            "change the identifier fields",
            |v| v["identifier-field-ids"] = json!([1, 2]),
            "identifier-field-ids changed from [1] to [1, 2]",
        ),
        (
            "rename the identifier field",
            |v| field(v, "event_uuid")["name"] = json!("uuid"),
            "event_uuid (id 1) cannot be renamed to uuid: it is the identifier field",
        ),
        (
            "make the identifier field optional",
            |v| field(v, "event_uuid")["required"] = json!(false),
            "Cannot add identifier field: event_uuid is an optional field",
        ),
        (
            "rename a partition source",
            |v| field(v, "event_type")["name"] = json!("kind"),
            "event_type (id 3) cannot be renamed to kind: it is a partition source column",
        ),
        (
            "retype a partition source",
            |v| field(v, "created_datetime")["type"] = json!("timestamp"),
            "created_datetime (id 6) cannot change type from timestamptz to timestamp",
        ),
        (
            "drop a partition source",
            |v| drop_field(v, "created_datetime"),
            "created_datetime (id 6) cannot be dropped: it is a partition source column",
        ),
        (
            "drop the identifier field",
            |v| {
                drop_field(v, "event_uuid");
                v["identifier-field-ids"] = json!([]);
            },
            "event_uuid (id 1) cannot be dropped: it is the identifier field",
        ),
        (
            "drop payload",
            |v| drop_field(v, "payload"),
            "payload (id 7) cannot be dropped: it holds every payload field",
        ),
        (
            "rename the content hash",
            |v| field(v, "_content_hash")["name"] = json!("hash"),
            "_content_hash (id 11) cannot be renamed to hash: Floe reads it back",
        ),
        (
            "move a nested field to the top level",
            |v| {
                let zip = nested(v, "address").pop().unwrap();
                add(v, zip);
            },
            "address.zip (id 17) cannot move to zip",
        ),
        (
            "add a column of a type Floe cannot fill",
            |v| {
                add(
                    v,
                    json!({"id": 21, "name": "blob", "required": false, "type": "binary"}),
                )
            },
            "column blob (id 21): type binary is not one Floe fills from JSON",
        ),
        (
            "add a map column",
            |v| {
                add(
                    v,
                    json!({"id": 21, "name": "attrs", "required": false, "type": {
                    "type": "map", "key-id": 22, "key": "string", "value-id": 23,
                    "value-required": false, "value": "string"}}),
                )
            },
            "column attrs (id 21): type map is not one Floe fills from JSON",
        ),
    ];
    for (what, edit, want) in cases {
        match step(edit) {
            Ok(changes) => panic!("{what}: allowed ({changes:?})"),
            Err(message) => {
                assert!(
                    message.starts_with("schemas/events/0002-step.json: ")
                        && message.contains(want),
                    "{what}: {message}"
                );
            }
        }
    }
}

#[test]
fn duplicate_ids_in_one_file_are_refused() {
    let mut v = base();
    add(
        &mut v,
        json!({"id": 20, "name": "other", "required": false, "type": "string"}),
    );
    // iceberg's parser refuses it (at any depth), so `floe` reports it as
    // "not an Iceberg schema", naming the id.
    let message = serde_json::from_str::<iceberg::spec::Schema>(&v.to_string())
        .unwrap_err()
        .to_string();
    assert!(message.contains("20"), "{message}");
}

#[test]
fn the_first_file_defines_the_columns_floe_fills() {
    let cases: &[(Edit, &str)] = &[
        (
            |v| drop_field(v, "_content_hash"),
            "must define column _content_hash as id 11 of type long",
        ),
        (
            |v| field(v, "created_at")["type"] = json!("long"),
            "must define column created_at as id 5 of type double",
        ),
        (
            |v| {
                add(
                    v,
                    json!({"id": 21, "name": "x", "required": true, "type": "string"}),
                )
            },
            "column x (id 21) is required, but Floe does not fill it",
        ),
    ];
    for (edit, want) in cases {
        let mut v = base();
        edit(&mut v);
        let message = SchemaChain::check(TableKind::Events, vec![file(1, &v)])
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("schemas/events/0001-step.json: ") && message.contains(want),
            "{message}"
        );
    }
}

#[test]
fn steps_are_checked_in_turn_and_ids_stay_retired() {
    // 1 -> 2 drops note (id 20); 2 -> 3 adds a column reusing id 20.
    let one = base();
    let mut two = base();
    drop_field(&mut two, "note");
    let mut three = two.clone();
    add(
        &mut three,
        json!({"id": 20, "name": "note2", "required": false, "type": "string"}),
    );
    let message = SchemaChain::check(
        TableKind::Events,
        vec![file(1, &one), file(2, &two), file(3, &three)],
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.starts_with("schemas/events/0003-step.json: ")
            && message
                .contains("which an earlier file already used (the highest id used so far is 20)"),
        "{message}"
    );
}

#[test]
fn an_applied_file_must_stay_unchanged() {
    let one = file(1, &base());
    let mut edited = base();
    field(&mut edited, "note")["doc"] = json!("edited");
    let chain = SchemaChain::check(TableKind::Events, vec![one.clone()]).unwrap();
    let recorded = chain.applied_property(0);
    assert_eq!(recorded, format!("0001-step.json={}", one.digest));
    chain.check_applied(&recorded).unwrap();

    let chain = SchemaChain::check(TableKind::Events, vec![file(1, &edited)]).unwrap();
    let message = chain.check_applied(&recorded).unwrap_err().to_string();
    assert!(
        message.contains("0001-step.json") && message.contains("was edited after it was applied"),
        "{message}"
    );
    let message = chain
        .check_applied(&format!("{recorded},0002-gone.json=00"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("0001-step.json"), "{message}");
}

#[test]
fn git_history_catches_an_edited_or_removed_file() {
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(repo.path())
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q"]);
    let schemas = repo.path().join("schemas");
    let events = schemas.join("events");
    std::fs::create_dir_all(&events).unwrap();
    std::fs::write(events.join("0001-initial.json"), INITIAL).unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "first"]);
    let source = crate::table::SchemaSource::Dir(schemas.clone());

    // A new file on top: fine.
    let mut two: Value = serde_json::from_str(INITIAL).unwrap();
    add(
        &mut two,
        json!({"id": 12, "name": "amount", "required": false, "type": "double"}),
    );
    std::fs::write(events.join("0002-amount.json"), two.to_string()).unwrap();
    let chain = SchemaChain::load(TableKind::Events, &source).unwrap();
    chain.check_unchanged_since(&schemas, "HEAD").unwrap();

    // An edit of a committed file: refused.
    std::fs::write(
        events.join("0001-initial.json"),
        INITIAL.replace("upsert key", "key"),
    )
    .unwrap();
    let chain = SchemaChain::load(TableKind::Events, &source).unwrap();
    let message = chain
        .check_unchanged_since(&schemas, "HEAD")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("events/0001-initial.json")
            && message.contains("differs from its version at HEAD"),
        "{message}"
    );
}
