//! Shard leases: how several Floe tasks share the shards of one Kinesis
//! stream, each shard read by one task at a time.
//!
//! Leases live in a DynamoDB table ([`LeaseTable`]): one item per shard with an
//! owner and a counter the owner increments on every renewal, and one
//! heartbeat item per worker, so that a worker holding no shard still counts
//! when shares are computed. A lease whose counter stood still for a lease
//! duration, as measured on the observer's own clock, is expired; no clocks
//! need to agree. Every change is a conditional write.
//!
//! Each worker runs a [`keeper`]: it heartbeats, renews its leases, and
//! balances by the pure rules of [`balance`]: below `ceil(shards /
//! workers)`, take free and expired leases first, then ask the busiest
//! worker to hand one over. A hand-off is graceful: the owner stops reading
//! the shard, commits what it read, and only then transfers the lease, so
//! the new owner starts exactly where the table's checkpoint says. A worker
//! that shuts down releases its leases after its final commit; one that
//! dies leaves them to expire.
//!
//! Leases keep two tasks from reading one shard, most of the time; they are
//! not what keeps records from being committed twice. That is the table's
//! checkpoint compare-and-swap: a commit names the position each shard's
//! records start from, and is refused when the table says otherwise. The
//! [`Claims`] let the pipeline drop what it read of a shard it lost before
//! writing files for it.

pub mod balance;
mod claims;
pub mod keeper;
mod table;

pub use claims::Claims;
pub use keeper::{KeeperConfig, LeaseHandle, LeaseLink, LeaseState, Leases, Note, start};
pub use table::{LeaseError, LeaseTable, client};
