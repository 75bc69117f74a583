//! CPU-bound or blocking work (SQLite calls, Parquet encoding and decoding)
//! on tokio's blocking pool, so that it holds up no async worker, and with
//! it the stages those run (decoding the next batch, uploads, lease
//! renewals).

/// The runtime shut down before the work ran: it was not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutDown;

/// Runs `work` on tokio's blocking pool. Whatever it uses it owns: values
/// move in, owned results move out. A panic in it is the caller's panic, as
/// if it had run inline; a runtime shutting down (the only thing that
/// cancels a blocking task) is the caller's error type's [`ShutDown`].
pub async fn run<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<ShutDown> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => match e.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(_) => Err(ShutDown.into()),
        },
    }
}
