//! The AWS Glue catalog: a table is a Glue table whose parameters say
//! `table_type=ICEBERG` and name its current `metadata_location`, as Athena,
//! Spark's and Trino's Glue catalogs, and PyIceberg expect.
//!
//! The compare-and-swap is `UpdateTable` with the `VersionId` read by the
//! `GetTable` that confirmed the expected metadata location: Glue refuses it
//! with `ConcurrentModificationException` when the table changed in between.
//! Each swap also stores `previous_metadata_location` and the column list
//! (for the Glue console and Athena's schema view); other parameters of the
//! table are kept.

use std::collections::HashMap;

use aws_sdk_glue::Client;
use aws_sdk_glue::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_glue::types::{Column, DatabaseInput, StorageDescriptor, TableInput};
use iceberg::spec::{NestedFieldRef, PrimitiveType, TableMetadata, Type};

use super::{CatalogError, SwapOutcome, TableName};
use crate::aws::{HttpResponse, error_code, is_transient};

/// A catalog in AWS Glue.
pub struct GlueCatalog {
    client: Client,
}

impl GlueCatalog {
    /// A catalog over the account's Glue data catalog.
    pub fn new(client: Client) -> Self {
        GlueCatalog { client }
    }

    /// Creates the database if absent.
    pub async fn ensure_namespace(&self, namespace: &str) -> Result<(), CatalogError> {
        match self.client.get_database().name(namespace).send().await {
            Ok(_) => return Ok(()),
            Err(e) if error_code(&e) == Some("EntityNotFoundException") => {}
            Err(e) => return Err(glue_error("GetDatabase", namespace, &e)),
        }
        let input = DatabaseInput::builder()
            .name(namespace)
            .description("Created by Floe")
            .build()
            .map_err(|e| CatalogError::Glue {
                operation: "CreateDatabase".into(),
                target: namespace.into(),
                message: e.to_string(),
                retryable: false,
            })?;
        match self
            .client
            .create_database()
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some("AlreadyExistsException") => Ok(()),
            Err(e) => Err(glue_error("CreateDatabase", namespace, &e)),
        }
    }

    /// The current metadata location of a table, or `None` when it does not exist.
    pub async fn load(&self, table: &TableName) -> Result<Option<String>, CatalogError> {
        Ok(self.current(table).await?.map(|c| c.metadata_location))
    }

    /// Registers a new table; `Conflict` when a writer created it first.
    pub async fn create(
        &self,
        table: &TableName,
        metadata_location: &str,
        metadata: &TableMetadata,
    ) -> Result<SwapOutcome, CatalogError> {
        let parameters = HashMap::from([
            ("table_type".to_string(), "ICEBERG".to_string()),
            (
                "metadata_location".to_string(),
                metadata_location.to_string(),
            ),
        ]);
        let input = table_input(table, parameters, metadata)?;
        match self
            .client
            .create_table()
            .database_name(&table.namespace)
            .table_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(SwapOutcome::Swapped),
            Err(e) if error_code(&e) == Some("AlreadyExistsException") => Ok(SwapOutcome::Conflict),
            Err(e) => Err(glue_error("CreateTable", &table.to_string(), &e)),
        }
    }

    /// Points the table at `new` only if it still points at `expected`.
    pub async fn swap(
        &self,
        table: &TableName,
        expected: &str,
        new: &str,
        metadata: &TableMetadata,
    ) -> Result<SwapOutcome, CatalogError> {
        let Some(current) = self.current(table).await? else {
            return Ok(SwapOutcome::Conflict);
        };
        if current.metadata_location != expected {
            return Ok(SwapOutcome::Conflict);
        }
        let mut parameters = current.parameters;
        parameters.insert("table_type".into(), "ICEBERG".into());
        parameters.insert("metadata_location".into(), new.into());
        parameters.insert("previous_metadata_location".into(), expected.into());
        let input = table_input(table, parameters, metadata)?;
        let mut request = self
            .client
            .update_table()
            .database_name(&table.namespace)
            .table_input(input)
            // A new table version would be noise: the metadata file is the history.
            .skip_archive(true);
        if let Some(version) = current.version_id {
            request = request.version_id(version);
        }
        match request.send().await {
            Ok(_) => Ok(SwapOutcome::Swapped),
            Err(e) if error_code(&e) == Some("ConcurrentModificationException") => {
                Ok(SwapOutcome::Conflict)
            }
            Err(e) => Err(glue_error("UpdateTable", &table.to_string(), &e)),
        }
    }

    async fn current(&self, table: &TableName) -> Result<Option<Current>, CatalogError> {
        let answer = self
            .client
            .get_table()
            .database_name(&table.namespace)
            .name(&table.name)
            .send()
            .await;
        let out = match answer {
            Ok(out) => out,
            Err(e) if error_code(&e) == Some("EntityNotFoundException") => return Ok(None),
            Err(e) => return Err(glue_error("GetTable", &table.to_string(), &e)),
        };
        let Some(glue_table) = out.table else {
            return Ok(None);
        };
        let parameters = glue_table.parameters.unwrap_or_default();
        if !parameters
            .get("table_type")
            .is_some_and(|t| t.eq_ignore_ascii_case("ICEBERG"))
        {
            return Err(CatalogError::NotIceberg {
                table: table.clone(),
            });
        }
        let metadata_location = parameters
            .get("metadata_location")
            .cloned()
            .ok_or_else(|| CatalogError::NoMetadataLocation {
                table: table.clone(),
            })?;
        Ok(Some(Current {
            metadata_location,
            version_id: glue_table.version_id,
            parameters,
        }))
    }
}

/// A table as `GetTable` returned it.
struct Current {
    metadata_location: String,
    version_id: Option<String>,
    parameters: HashMap<String, String>,
}

fn table_input(
    table: &TableName,
    parameters: HashMap<String, String>,
    metadata: &TableMetadata,
) -> Result<TableInput, CatalogError> {
    let schema = metadata.current_schema();
    let mut columns = Vec::new();
    for field in schema.as_struct().fields() {
        columns.push(column(field).map_err(|message| CatalogError::Glue {
            operation: "UpdateTable".into(),
            target: table.to_string(),
            message,
            retryable: false,
        })?);
    }
    TableInput::builder()
        .name(&table.name)
        .table_type("EXTERNAL_TABLE")
        .set_parameters(Some(parameters))
        .storage_descriptor(
            StorageDescriptor::builder()
                .location(metadata.location())
                .set_columns(Some(columns))
                .build(),
        )
        .build()
        .map_err(|e| CatalogError::Glue {
            operation: "UpdateTable".into(),
            target: table.to_string(),
            message: e.to_string(),
            retryable: false,
        })
}

/// A Glue column for a top-level field, with the Iceberg field id and
/// optionality as column parameters (as Iceberg's Java Glue catalog writes).
fn column(field: &NestedFieldRef) -> Result<Column, String> {
    let mut builder = Column::builder()
        .name(&field.name)
        .r#type(hive_type(&field.field_type))
        .parameters("iceberg.field.id", field.id.to_string())
        .parameters("iceberg.field.optional", (!field.required).to_string())
        .parameters("iceberg.field.current", "true");
    if let Some(doc) = &field.doc {
        builder = builder.comment(doc);
    }
    builder.build().map_err(|e| e.to_string())
}

/// The Hive type name Glue shows for an Iceberg type.
fn hive_type(t: &Type) -> String {
    match t {
        Type::Primitive(p) => match p {
            PrimitiveType::Boolean => "boolean".into(),
            PrimitiveType::Int => "int".into(),
            PrimitiveType::Long => "bigint".into(),
            PrimitiveType::Float => "float".into(),
            PrimitiveType::Double => "double".into(),
            PrimitiveType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            PrimitiveType::Date => "date".into(),
            PrimitiveType::Time | PrimitiveType::String | PrimitiveType::Uuid => "string".into(),
            PrimitiveType::Timestamp
            | PrimitiveType::Timestamptz
            | PrimitiveType::TimestampNs
            | PrimitiveType::TimestamptzNs => "timestamp".into(),
            PrimitiveType::Fixed(_) | PrimitiveType::Binary => "binary".into(),
        },
        Type::Struct(s) => {
            let fields: Vec<String> = s
                .fields()
                .iter()
                .map(|f| format!("{}:{}", f.name, hive_type(&f.field_type)))
                .collect();
            format!("struct<{}>", fields.join(","))
        }
        Type::List(l) => format!("array<{}>", hive_type(&l.element_field.field_type)),
        Type::Map(m) => format!(
            "map<{},{}>",
            hive_type(&m.key_field.field_type),
            hive_type(&m.value_field.field_type)
        ),
    }
}

fn glue_error<E>(operation: &str, target: &str, e: &SdkError<E, HttpResponse>) -> CatalogError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let retryable = matches!(
        error_code(e),
        Some("ThrottlingException" | "InternalServiceException" | "OperationTimeoutException")
    ) || is_transient(e);
    CatalogError::Glue {
        operation: operation.into(),
        target: target.into(),
        message: DisplayErrorContext(e).to_string(),
        retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::{ListType, NestedField};
    use std::sync::Arc;

    #[test]
    fn glue_columns_use_hive_type_names() {
        let list = Type::List(ListType {
            element_field: Arc::new(NestedField::list_element(
                3,
                Type::Primitive(PrimitiveType::String),
                false,
            )),
        });
        assert_eq!(hive_type(&list), "array<string>");
        assert_eq!(hive_type(&Type::Primitive(PrimitiveType::Long)), "bigint");
        assert_eq!(
            hive_type(&Type::Primitive(PrimitiveType::Timestamptz)),
            "timestamp"
        );
        let field = Arc::new(NestedField::required(
            1,
            "event_uuid",
            Type::Primitive(PrimitiveType::String),
        ));
        let c = column(&field).unwrap();
        assert_eq!((c.name(), c.r#type()), ("event_uuid", Some("string")));
        let params = c.parameters().unwrap();
        assert_eq!(params["iceberg.field.id"], "1");
        assert_eq!(params["iceberg.field.optional"], "false");
    }
}
