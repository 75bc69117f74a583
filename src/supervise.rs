//! The stages that run beside the pipeline for as long as it lasts (the
//! operations server, the catalog probe, the lease keeper): none may die
//! quietly. A [`Supervisor`] reports a stage's panic, or the end of one that
//! should never end, to the run loop through [`Failures`]; the run then
//! commits what it read and fails, naming the stage.
//!
//! (The reading stages, the file reader, the decoder and the Kinesis
//! consumer, are joined by the run loop itself; a Kinesis shard reader that
//! panics is restarted by the consumer.)

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::telemetry::{join_error_message, panic_message};

/// A stage that panicked or ended while the run went on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageFailure {
    /// The stage, as in the run's error message.
    pub stage: &'static str,
    /// What happened: `it panicked: ...`, or that it ended.
    pub message: String,
}

/// Hands out supervised stages; cheap to clone.
#[derive(Debug, Clone)]
pub struct Supervisor {
    failed: mpsc::UnboundedSender<StageFailure>,
}

/// The run loop's side: the failures, first one first.
#[derive(Debug)]
pub struct Failures {
    failed: mpsc::UnboundedReceiver<StageFailure>,
}

/// A supervisor and the receiver of what its stages report.
pub fn supervisor() -> (Supervisor, Failures) {
    let (failed, rx) = mpsc::unbounded_channel();
    (Supervisor { failed }, Failures { failed: rx })
}

impl Supervisor {
    /// Watches `task`, a stage meant to last as long as the process: its end,
    /// by panic or by returning, is a failure.
    pub fn watch_lasting(&self, stage: &'static str, task: JoinHandle<()>) {
        let failed = self.failed.clone();
        tokio::spawn(async move {
            let message = match task.await {
                Ok(()) => "it ended while the run went on".to_string(),
                Err(e) => join_error_message(e),
            };
            report(&failed, stage, message);
        });
    }

    /// Runs `stage` as a task whose panic is a failure (its return is not:
    /// the stage decides when it is done). Aborting the handle ends it.
    pub fn spawn<F>(&self, stage: &'static str, future: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let failed = self.failed.clone();
        tokio::spawn(async move {
            if let Err(payload) = AssertUnwindSafe(future).catch_unwind().await {
                let message = format!("it panicked: {}", panic_message(payload.as_ref()));
                report(&failed, stage, message);
            }
        })
    }
}

fn report(failed: &mpsc::UnboundedSender<StageFailure>, stage: &'static str, message: String) {
    tracing::error!(stage, message = %message, "a stage of the pipeline failed: stopping the run after committing what it handed over");
    // The run may be over already: then nobody needs to hear it.
    let _ = failed.send(StageFailure { stage, message });
}

impl Failures {
    /// The next failure; pending for as long as none comes.
    pub async fn next(&mut self) -> StageFailure {
        match self.failed.recv().await {
            Some(failure) => failure,
            // Every supervisor is gone: no failure can come any more.
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_and_the_end_of_a_lasting_stage_are_reported_by_name() {
        let (supervisor, mut failures) = supervisor();
        let done = supervisor.spawn("quiet", async {});
        done.await.unwrap();
        supervisor.spawn("keeper", async { panic!("boom") });
        let failure = failures.next().await;
        assert_eq!(
            failure,
            StageFailure {
                stage: "keeper",
                message: "it panicked: boom".into()
            }
        );
        supervisor.watch_lasting("server", tokio::spawn(async {}));
        let failure = failures.next().await;
        assert_eq!(failure.stage, "server");
        assert_eq!(failure.message, "it ended while the run went on");
        assert!(
            failures.failed.try_recv().is_err(),
            "the quiet stage's return is no failure"
        );
    }
}
