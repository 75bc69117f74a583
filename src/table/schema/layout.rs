//! What a table's schema file does not say: its partition spec, sort order
//! and Parquet column settings (bloom filters, no statistics, no dictionary),
//! derived from the schema, or what keeps Floe from writing it.

use iceberg::spec::{
    NullOrder, Schema, SortDirection, SortField, SortOrder, Transform, UnboundPartitionSpec,
};

use crate::contract::TableKind;
use crate::table::TableError;

/// Partition spec, sort order, bloom-filter columns, no-statistics columns,
/// no-dictionary columns.
pub(super) type LayoutParts = (
    UnboundPartitionSpec,
    SortOrder,
    Vec<String>,
    Vec<String>,
    Vec<String>,
);

/// Partition spec, sort order, bloom-filter, no-statistics and
/// no-dictionary columns of `schema`, or what keeps Floe from writing it.
pub(super) fn parts(
    kind: TableKind,
    schema: &Schema,
    origin: &str,
) -> Result<LayoutParts, TableError> {
    let schema_err = |message: String| TableError::Schema {
        origin: origin.to_string(),
        message,
    };
    let field_id = |name: &str| {
        schema
            .field_by_name(name)
            .map(|f| f.id)
            .ok_or_else(|| schema_err(format!("required column `{name}` is missing")))
    };
    let (partition, sort, bloom, no_stats, no_dictionary) = match kind {
        TableKind::Events => {
            let uuid = field_id("event_uuid")?;
            if schema.identifier_field_ids().collect::<Vec<_>>() != vec![uuid] {
                return Err(schema_err(
                    "identifier-field-ids must be exactly [the id of event_uuid]".into(),
                ));
            }
            let created = field_id("created_datetime")?;
            let event_type = field_id("event_type")?;
            let partition = UnboundPartitionSpec::builder()
                .add_partition_field(created, "created_datetime_day", Transform::Day)
                .and_then(|b| b.add_partition_field(event_type, "event_type", Transform::Identity))
                .map_err(|e| schema_err(format!("partition spec: {e}")))?
                .build();
            let sort = SortOrder::builder()
                .with_order_id(1)
                .with_sort_field(ascending(event_type))
                .with_sort_field(ascending(created))
                .build(schema)
                .map_err(|e| schema_err(format!("sort order: {e}")))?;
            (
                partition,
                sort,
                vec!["event_uuid".to_string()],
                vec!["payload".to_string()],
                [
                    "created_at",
                    "created_datetime",
                    "_source_position",
                    "_content_hash",
                ]
                .into_iter()
                .filter(|c| schema.field_by_name(c).is_some())
                .map(String::from)
                .collect(),
            )
        }
        TableKind::Rejected => {
            field_id("raw")?;
            (
                UnboundPartitionSpec::builder().build(),
                SortOrder::unsorted_order(),
                vec![],
                vec!["raw".to_string(), "message".to_string()],
                vec![],
            )
        }
    };
    Ok((partition, sort, bloom, no_stats, no_dictionary))
}

fn ascending(source_id: i32) -> SortField {
    SortField {
        source_id,
        transform: Transform::Identity,
        direction: SortDirection::Ascending,
        null_order: NullOrder::First,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_schema_needs_its_identifier() {
        let text = include_str!("../../../schemas/events/0001-initial.json").replace(
            "\"identifier-field-ids\": [1]",
            "\"identifier-field-ids\": []",
        );
        let err = parts(
            TableKind::Events,
            &serde_json::from_str(&text).unwrap(),
            "x.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("x.json") && err.contains("identifier-field-ids"),
            "{err}"
        );
    }
}
