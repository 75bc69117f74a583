//! One partition's rewrite: its data files read with the partition's
//! position deletes applied, and written anew into files near the target
//! size.

use futures::TryStreamExt;
use iceberg::arrow::ArrowReaderBuilder;
use iceberg::scan::{FileScanTask, FileScanTaskDeleteFile};
use iceberg::spec::DataFile;

use super::delete_files;
use super::plan::PartitionPlan;
use crate::table::maintain::MaintainSettings;
use crate::table::writer::DataWriter;
use crate::table::{LoadedTable, TableError, TableStore};

/// The scan tasks of `plan`'s data files, each with every delete file of
/// the partition (a position delete names the files it applies to).
fn scan_tasks(table: &LoadedTable, plan: &PartitionPlan) -> Result<Vec<FileScanTask>, TableError> {
    if table.metadata.partition_spec_by_id(plan.spec_id).is_none() {
        return Err(TableError::Incompatible {
            table: table.name.clone(),
            message: format!(
                "partition {} names partition spec {}, which the table lacks",
                plan.partition.path(),
                plan.spec_id
            ),
        });
    }
    let schema = table.metadata.current_schema().clone();
    let field_ids: Vec<i32> = schema.as_struct().fields().iter().map(|f| f.id).collect();
    let deletes: Vec<FileScanTaskDeleteFile> = plan
        .deletes
        .iter()
        .map(|d| FileScanTaskDeleteFile {
            file_path: d.file_path().to_string(),
            file_size_in_bytes: d.file_size_in_bytes(),
            file_type: d.content_type(),
            partition_spec_id: plan.spec_id,
            equality_ids: None,
        })
        .collect();
    Ok(plan
        .data
        .iter()
        .map(|file| FileScanTask {
            file_size_in_bytes: file.file_size_in_bytes(),
            start: 0,
            length: file.file_size_in_bytes(),
            record_count: Some(file.record_count()),
            data_file_path: file.file_path().to_string(),
            data_file_format: file.file_format(),
            project_field_ids: field_ids.clone(),
            schema: schema.clone(),
            predicate: None,
            deletes: deletes.clone(),
            // Every column is read from the file (Floe writes the partition
            // source columns), not filled in from the partition tuple.
            partition: None,
            partition_spec: None,
            name_mapping: None,
            case_sensitive: true,
        })
        .collect())
}

/// Rewrites one partition's files, deletes applied, into new files.
pub(super) async fn rewrite_partition(
    store: &TableStore,
    base: &LoadedTable,
    writer: &DataWriter,
    plan: &PartitionPlan,
    settings: &MaintainSettings,
) -> Result<Vec<DataFile>, TableError> {
    let selected: Vec<_> = scan_tasks(base, plan)?.into_iter().map(Ok).collect();
    let reader = ArrowReaderBuilder::new(store.file_io().clone(), iceberg::Runtime::try_current()?)
        .with_data_file_concurrency_limit(1)
        .build();
    let mut batches = reader
        .read(Box::pin(futures::stream::iter(selected)))?
        .stream();
    let schema = writer.arrow_schema()?;
    let rows_hint = plan.live_rows() as usize;
    let mut written = Vec::new();
    let mut open = None;
    let mut rows = 0u64;
    while let Some(batch) = batches.try_next().await? {
        if batch.num_rows() == 0 {
            continue;
        }
        // Same columns, with the writer's field metadata.
        let batch = arrow_array::RecordBatch::try_new(schema.clone(), batch.columns().to_vec())?;
        let file = match &mut open {
            Some(file) => file,
            None => open.insert(writer.open(&plan.partition, rows_hint).await?),
        };
        file.write(&batch).await?;
        rows += batch.num_rows() as u64;
        if file.written_bytes() as u64 >= settings.target_file_size
            && let Some(file) = open.take()
        {
            written.push(file.close().await?);
        }
    }
    if let Some(file) = open.take() {
        written.push(file.close().await?);
    }
    if rows != plan.live_rows() {
        delete_files(store, &written).await;
        return Err(TableError::Incompatible {
            table: base.name.clone(),
            message: format!(
                "compacting partition {} read {rows} rows where its files hold {} live rows; \
                 nothing was committed",
                plan.partition.path(),
                plan.live_rows()
            ),
        });
    }
    Ok(written)
}
