//! Every broker call gets a deadline, so a stalled broker becomes an error, never a hang.

use crate::bus::BusError;
use std::future::Future;
use std::time::Duration;

/// Run one broker call with a time limit; any failure is [`BusError::Unavailable`].
pub(super) async fn bounded<T>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = lapin::Result<T>>,
) -> Result<T, BusError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(BusError::Unavailable(format!("{what}: {e}"))),
        Err(_) => Err(BusError::Unavailable(format!(
            "{what}: no answer from the broker within {limit:?}"
        ))),
    }
}
