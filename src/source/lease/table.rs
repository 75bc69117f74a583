//! The lease table in DynamoDB: one item per shard lease and one heartbeat
//! item per worker, every change a conditional write.
//!
//! The table's only key is the string `lease_key`. Keys start with the
//! stream and consumer name, so one table serves several streams and
//! consumers:
//!
//! | `lease_key` | attributes |
//! |---|---|
//! | `kinesis:<stream>:<consumer>:<shard id>` (the shard's checkpoint key) | `kind = shard`, `shard_id`, `counter`, `owner` (absent: free), `handoff_to` (a worker that asked for it) |
//! | `kinesis:<stream>:<consumer>:worker:<worker id>` | `kind = worker`, `worker_id`, `counter` |
//!
//! The owner of a lease increments its `counter` on every renewal; the
//! worker whose heartbeat item it is increments that one. Nobody compares
//! clocks: a reader notes when it last saw a counter change, on its own
//! clock (see [`super::keeper`]).
//!
//! This module only talks to DynamoDB: a write whose condition does not
//! hold is `Ok(false)` (someone else moved first), any other failure a
//! [`LeaseError`].

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

/// A lease table call that failed (not a condition that did not hold).
#[derive(Debug, thiserror::Error)]
#[error("lease table {table}: {operation} failed")]
pub struct LeaseError {
    /// The table.
    pub table: String,
    /// The call (`Scan`, `UpdateItem`...).
    pub operation: &'static str,
    /// Whether trying again may help (throttling, a network failure).
    retryable: bool,
    /// The service's error (boxed: it is large, and errors are rare).
    #[source]
    pub source: Box<aws_sdk_dynamodb::Error>,
}

impl LeaseError {
    /// Whether the same call may succeed when tried again.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// One item of the lease table, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its key.
    pub key: String,
    /// A shard lease or a worker's heartbeat.
    pub kind: ItemKind,
    /// The counter its owner increments.
    pub counter: u64,
    /// The worker holding the lease (shard leases only).
    pub owner: Option<String>,
    /// The worker that asked for the lease (shard leases only).
    pub handoff_to: Option<String>,
}

/// What an item is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKind {
    /// The lease of this shard.
    Shard(String),
    /// The heartbeat of this worker.
    Worker(String),
}

/// How a lease is taken: the condition that makes it ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take<'a> {
    /// It has no owner.
    Free,
    /// Its owner stopped renewing it: it still has this owner and counter.
    Expired {
        /// The owner seen.
        owner: &'a str,
        /// The counter seen.
        counter: u64,
    },
    /// Its owner left our hand-off request unanswered.
    Steal {
        /// The owner seen.
        owner: &'a str,
    },
}

/// The lease items of one stream and consumer name in one table.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    client: Client,
    table: String,
    /// `kinesis:<stream>:<consumer>:`: every key of this stream and consumer.
    prefix: String,
}

const KEY: &str = "lease_key";

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl LeaseTable {
    /// The items of `stream` (its name) and `consumer` in `table`.
    pub fn new(client: Client, table: &str, stream: &str, consumer: &str) -> Self {
        Self {
            client,
            table: table.to_string(),
            prefix: crate::checkpoint::kinesis_source_key(stream, consumer, ""),
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.table
    }

    /// The key of `shard`'s lease (its checkpoint key).
    pub(super) fn shard_key(&self, shard: &str) -> String {
        format!("{}{shard}", self.prefix)
    }

    fn worker_key(&self, worker: &str) -> String {
        format!("{}worker:{worker}", self.prefix)
    }

    fn error<E>(
        &self,
        operation: &'static str,
        e: SdkError<E, crate::aws::HttpResponse>,
    ) -> LeaseError
    where
        E: ProvideErrorMetadata,
        aws_sdk_dynamodb::Error: From<SdkError<E, crate::aws::HttpResponse>>,
    {
        let retryable = crate::aws::is_transient(&e)
            || matches!(
                crate::aws::error_code(&e),
                Some(
                    "ProvisionedThroughputExceededException"
                        | "RequestLimitExceeded"
                        | "ThrottlingException"
                        | "InternalServerError"
                        | "LimitExceededException"
                        | "TransactionConflictException"
                )
            );
        LeaseError {
            table: self.table.clone(),
            operation,
            retryable,
            source: Box::new(e.into()),
        }
    }

    /// `Ok(false)` for a condition that did not hold, the error otherwise.
    fn conditional<T, E>(
        &self,
        operation: &'static str,
        result: Result<T, SdkError<E, crate::aws::HttpResponse>>,
    ) -> Result<bool, LeaseError>
    where
        E: ProvideErrorMetadata,
        aws_sdk_dynamodb::Error: From<SdkError<E, crate::aws::HttpResponse>>,
    {
        match result {
            Ok(_) => Ok(true),
            Err(e) if crate::aws::error_code(&e) == Some("ConditionalCheckFailedException") => {
                Ok(false)
            }
            Err(e) => Err(self.error(operation, e)),
        }
    }

    /// Every item of this stream and consumer (a strongly consistent scan).
    pub async fn scan(&self) -> Result<Vec<Item>, LeaseError> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let answer = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression("begins_with(#key, :prefix)")
                .expression_attribute_names("#key", KEY)
                .expression_attribute_values(":prefix", s(&self.prefix))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.error("Scan", e))?;
            items.extend(answer.items().iter().filter_map(|i| self.item(i)));
            match answer.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }

    /// An item as read; `None` for one Floe did not write.
    fn item(&self, item: &HashMap<String, AttributeValue>) -> Option<Item> {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let key = text(KEY)?;
        let counter = item
            .get("counter")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let kind = match text("kind")?.as_str() {
            "shard" => ItemKind::Shard(text("shard_id")?),
            "worker" => ItemKind::Worker(text("worker_id")?),
            _ => return None,
        };
        Some(Item {
            key,
            kind,
            counter,
            owner: text("owner"),
            handoff_to: text("handoff_to"),
        })
    }

    /// Counts one more heartbeat of `worker` (creating its item).
    pub async fn heartbeat(&self, worker: &str) -> Result<(), LeaseError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(&self.worker_key(worker)))
            .update_expression("SET #kind = :kind, worker_id = :worker ADD #counter :one")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#counter", "counter")
            .expression_attribute_values(":kind", s("worker"))
            .expression_attribute_values(":worker", s(worker))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(|e| self.error("UpdateItem", e))?;
        Ok(())
    }

    /// Deletes `worker`'s heartbeat item: its own when it leaves, or one
    /// whose counter stood still long enough (`counter`: only if unchanged).
    pub async fn remove_worker(
        &self,
        worker: &str,
        counter: Option<u64>,
    ) -> Result<bool, LeaseError> {
        let mut request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(KEY, s(&self.worker_key(worker)));
        if let Some(counter) = counter {
            request = request
                .condition_expression("#counter = :counter")
                .expression_attribute_names("#counter", "counter")
                .expression_attribute_values(":counter", n(counter));
        }
        self.conditional("DeleteItem", request.send().await)
    }

    /// Creates the free lease of `shard` unless it exists.
    pub async fn create(&self, shard: &str) -> Result<bool, LeaseError> {
        let answer = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY, s(&self.shard_key(shard)))
            .item("kind", s("shard"))
            .item("shard_id", s(shard))
            .item("counter", n(0))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", KEY)
            .send()
            .await;
        self.conditional("PutItem", answer)
    }

    /// Renews `worker`'s lease of `shard`: `false` when it is no longer
    /// `worker`'s.
    pub async fn renew(&self, shard: &str, worker: &str) -> Result<bool, LeaseError> {
        let answer = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(&self.shard_key(shard)))
            .update_expression("ADD #counter :one")
            .condition_expression("#owner = :me")
            .expression_attribute_names("#counter", "counter")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":me", s(worker))
            .send()
            .await;
        self.conditional("UpdateItem", answer)
    }

    /// Makes `worker` the owner of `shard`'s lease if `how` still holds.
    pub async fn take(
        &self,
        shard: &str,
        worker: &str,
        how: &Take<'_>,
    ) -> Result<bool, LeaseError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(&self.shard_key(shard)))
            .update_expression("SET #owner = :me ADD #counter :one REMOVE handoff_to")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#counter", "counter")
            .expression_attribute_names("#key", KEY)
            .expression_attribute_values(":me", s(worker))
            .expression_attribute_values(":one", n(1));
        request = match how {
            Take::Free => request
                .condition_expression("attribute_exists(#key) AND attribute_not_exists(#owner)"),
            Take::Expired { owner, counter } => request
                .condition_expression(
                    "attribute_exists(#key) AND #owner = :owner AND #counter = :counter",
                )
                .expression_attribute_values(":owner", s(owner))
                .expression_attribute_values(":counter", n(*counter)),
            Take::Steal { owner } => request
                .condition_expression(
                    "attribute_exists(#key) AND #owner = :owner AND handoff_to = :me",
                )
                .expression_attribute_values(":owner", s(owner)),
        };
        self.conditional("UpdateItem", request.send().await)
    }

    /// Asks `owner` to hand `shard` over to `worker` (unless someone asked
    /// first).
    pub async fn ask(&self, shard: &str, worker: &str, owner: &str) -> Result<bool, LeaseError> {
        let answer = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(&self.shard_key(shard)))
            .update_expression("SET handoff_to = :me")
            .condition_expression("#owner = :owner AND attribute_not_exists(handoff_to)")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(worker))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        self.conditional("UpdateItem", answer)
    }

    /// Clears `asker`'s request on `worker`'s lease of `shard`.
    pub async fn decline(
        &self,
        shard: &str,
        worker: &str,
        asker: &str,
    ) -> Result<bool, LeaseError> {
        let answer = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(&self.shard_key(shard)))
            .update_expression("REMOVE handoff_to")
            .condition_expression("#owner = :me AND handoff_to = :asker")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(worker))
            .expression_attribute_values(":asker", s(asker))
            .send()
            .await;
        self.conditional("UpdateItem", answer)
    }

    /// Gives `worker`'s lease of `shard` to `to`, or frees it (`None`).
    pub async fn transfer(
        &self,
        shard: &str,
        worker: &str,
        to: Option<&str>,
    ) -> Result<bool, LeaseError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(&self.shard_key(shard)))
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#counter", "counter")
            .expression_attribute_values(":me", s(worker))
            .expression_attribute_values(":one", n(1));
        let request = match to {
            Some(to) => request
                .update_expression("SET #owner = :to ADD #counter :one REMOVE handoff_to")
                .expression_attribute_values(":to", s(to)),
            None => request.update_expression("ADD #counter :one REMOVE #owner, handoff_to"),
        };
        self.conditional("UpdateItem", request.send().await)
    }

    /// Deletes the lease of a shard read to its end and committed:
    /// `worker`'s, or a free one (`None`).
    pub async fn delete(&self, shard: &str, worker: Option<&str>) -> Result<bool, LeaseError> {
        let request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(KEY, s(&self.shard_key(shard)))
            .expression_attribute_names("#owner", "owner");
        let request = match worker {
            Some(worker) => request
                .condition_expression("#owner = :me")
                .expression_attribute_values(":me", s(worker)),
            None => request.condition_expression("attribute_not_exists(#owner)"),
        };
        self.conditional("DeleteItem", request.send().await)
    }
}

/// A DynamoDB client from the default AWS configuration (`AWS_ENDPOINT_URL`
/// or `AWS_ENDPOINT_URL_DYNAMODB` point it elsewhere).
pub async fn client() -> Client {
    Client::new(&crate::aws::sdk_config().await)
}
