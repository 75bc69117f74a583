//! Named points where a test can make the process die, stop or panic, to
//! prove that a crash anywhere loses and duplicates nothing and that no
//! stage dies quietly.
//!
//! `FLOE_FAILPOINT=<point>[:<action>][@<n>]` arms one point: at its `n`th hit
//! (default the first) the process kills itself with SIGKILL (`die`, the
//! default: no destructor, no flush, as an out-of-memory kill), stops itself
//! with SIGSTOP (`stop`: a test does something while the process is frozen
//! there, then sends SIGCONT), or the thread or task passing it panics
//! (`panic`: a bug in one stage, which its supervisor must notice). Unset,
//! every point costs one relaxed load.
//!
//! The points of the commit path, in the order a commit passes them, then
//! those of the reading stages:
//!
//! | point | the process has just... |
//! |---|---|
//! | `after-data-files` | written this flush's data and delete files (or a compaction's files, in `floe maintain`) |
//! | `after-manifests` | written the manifests and the manifest list |
//! | `after-metadata-file` | written the next metadata file |
//! | `after-catalog-swap` | swapped the catalog pointer (the commit landed) |
//! | `before-positions-advance` | landed the events commit, before it moves on |
//! | `read-chunk` | read a chunk of a file, stdin or an object (the reader thread), before handing it on |
//! | `decode-chunk` | taken a chunk to decode (a decode task) |
//! | `shard-read` | had a `GetRecords` answer for a Kinesis shard (its reader task), before handing it on |
//! | `lease-renew` | begun a round of the lease keeper (heartbeat, renewals, takes) |
//! | `catalog-probe` | begun a probe of the catalog (the task behind `/health/ready`) |
//! | `operations-request` | accepted a connection on the operations port (the server's accept loop) |

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The variable that arms a fail point.
pub const ENV: &str = "FLOE_FAILPOINT";

/// A place in the commit path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// Data and delete files written, nothing committed.
    AfterDataFiles,
    /// Manifests and manifest list written.
    AfterManifests,
    /// Next metadata file written, catalog not yet swapped.
    AfterMetadataFile,
    /// Catalog swapped: the snapshot is in the table.
    AfterCatalogSwap,
    /// Events committed; the pipeline has not yet moved past them.
    BeforePositionsAdvance,
    /// The file reader has a chunk to hand on.
    ReadChunk,
    /// A decode task has taken a chunk.
    DecodeChunk,
    /// A shard reader has a `GetRecords` answer.
    ShardRead,
    /// The lease keeper begins a round.
    LeaseRenew,
    /// The catalog probe begins a probe.
    CatalogProbe,
    /// The operations server accepted a connection.
    OperationsRequest,
}

impl FailPoint {
    /// Every point: the commit path in commit order, then the readers, then
    /// the stages beside them.
    pub const ALL: [FailPoint; 11] = [
        FailPoint::AfterDataFiles,
        FailPoint::AfterManifests,
        FailPoint::AfterMetadataFile,
        FailPoint::AfterCatalogSwap,
        FailPoint::BeforePositionsAdvance,
        FailPoint::ReadChunk,
        FailPoint::DecodeChunk,
        FailPoint::ShardRead,
        FailPoint::LeaseRenew,
        FailPoint::CatalogProbe,
        FailPoint::OperationsRequest,
    ];

    /// The point's name in `FLOE_FAILPOINT`.
    pub fn name(self) -> &'static str {
        match self {
            FailPoint::AfterDataFiles => "after-data-files",
            FailPoint::AfterManifests => "after-manifests",
            FailPoint::AfterMetadataFile => "after-metadata-file",
            FailPoint::AfterCatalogSwap => "after-catalog-swap",
            FailPoint::BeforePositionsAdvance => "before-positions-advance",
            FailPoint::ReadChunk => "read-chunk",
            FailPoint::DecodeChunk => "decode-chunk",
            FailPoint::ShardRead => "shard-read",
            FailPoint::LeaseRenew => "lease-renew",
            FailPoint::CatalogProbe => "catalog-probe",
            FailPoint::OperationsRequest => "operations-request",
        }
    }
}

/// What an armed point does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL: the process dies on the spot.
    Die,
    /// SIGSTOP: the process freezes until SIGCONT.
    Stop,
    /// A panic of the thread or task passing the point.
    Panic,
}

/// An armed point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Armed {
    /// Where.
    pub point: FailPoint,
    /// What happens there.
    pub action: Action,
    /// At which hit (1 = the first).
    pub nth: u64,
}

impl Armed {
    /// Parses `<point>[:<action>][@<n>]`.
    pub fn parse(text: &str) -> Result<Armed, String> {
        let (rest, nth) = match text.split_once('@') {
            Some((rest, n)) => match n.parse::<u64>() {
                Ok(n) if n > 0 => (rest, n),
                _ => return Err(format!("`@{n}` must be a hit number from 1 up")),
            },
            None => (text, 1),
        };
        let (name, action) = match rest.split_once(':') {
            Some((name, "die")) => (name, Action::Die),
            Some((name, "stop")) => (name, Action::Stop),
            Some((name, "panic")) => (name, Action::Panic),
            Some((_, other)) => {
                return Err(format!(
                    "unknown action `{other}`: use `die`, `stop` or `panic`"
                ));
            }
            None => (rest, Action::Die),
        };
        let point = FailPoint::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = FailPoint::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "unknown fail point `{name}`: use one of {}",
                    names.join(", ")
                )
            })?;
        Ok(Armed { point, action, nth })
    }
}

static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

/// Reads `FLOE_FAILPOINT` once; an unparsable value is an error to report at
/// startup, not a silently unarmed point.
pub fn init() -> Result<Option<Armed>, String> {
    let armed = match std::env::var(ENV) {
        Ok(text) if !text.is_empty() => {
            Some(Armed::parse(&text).map_err(|e| format!("{ENV}={text}: {e}"))?)
        }
        _ => None,
    };
    Ok(*ARMED.get_or_init(|| armed))
}

/// Passes `point`: dies, stops or panics there when it is armed and this is
/// its hit.
pub fn hit(point: FailPoint) {
    let Some(Some(armed)) = ARMED.get() else {
        return;
    };
    if armed.point != point || HITS.fetch_add(1, Ordering::Relaxed) + 1 != armed.nth {
        return;
    }
    eprintln!(
        "floe: fail point {} reached ({:?})",
        point.name(),
        armed.action
    );
    let signal = match armed.action {
        Action::Die => libc::SIGKILL,
        Action::Stop => libc::SIGSTOP,
        // The one panic on purpose: what a test arms to prove that a stage's
        // supervisor notices a bug in it.
        Action::Panic => panic!("fail point {} reached", point.name()),
    };
    // SAFETY: raise has no preconditions; both signals are valid.
    unsafe {
        libc::raise(signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_point_action_and_hit() {
        assert_eq!(
            Armed::parse("after-catalog-swap:stop@3"),
            Ok(Armed {
                point: FailPoint::AfterCatalogSwap,
                action: Action::Stop,
                nth: 3
            })
        );
        assert_eq!(
            Armed::parse("after-data-files"),
            Ok(Armed {
                point: FailPoint::AfterDataFiles,
                action: Action::Die,
                nth: 1
            })
        );
    }

    #[test]
    fn names_what_is_wrong() {
        let e = Armed::parse("after-lunch").unwrap_err();
        assert!(e.contains("unknown fail point `after-lunch`"), "{e}");
        assert!(e.contains("before-positions-advance"), "{e}");
        let e = Armed::parse("after-manifests:explode").unwrap_err();
        assert!(e.contains("unknown action `explode`"), "{e}");
        assert_eq!(
            Armed::parse("decode-chunk:panic@2").map(|a| (a.point, a.action, a.nth)),
            Ok((FailPoint::DecodeChunk, Action::Panic, 2))
        );
        let e = Armed::parse("after-manifests@0").unwrap_err();
        assert!(e.contains("`@0`"), "{e}");
    }
}
