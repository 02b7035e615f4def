//! Keeps the bus connected: reconnects with exponential backoff, re-declares the topology
//! and restarts every registered consumer on the new connection.

use super::bus::Shared;
use super::link::Link;
use crate::bus::BusError;
use backoff::ExponentialBackoffBuilder;
use backoff::backoff::Backoff;
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A link that lived this long was healthy: the next failure starts backing off afresh.
const STABLE_FOR: Duration = Duration::from_secs(10);
/// How often the supervisor looks at the connection status besides listening for errors.
const STATUS_CHECK: Duration = Duration::from_millis(100);

/// Runs until the bus is closed or dropped.
pub(super) async fn supervise(shared: Arc<Shared>) {
    let mut backoff = ExponentialBackoffBuilder::new()
        .with_initial_interval(shared.config.reconnect_initial)
        .with_max_interval(shared.config.reconnect_max)
        .with_multiplier(2.0)
        .with_randomization_factor(0.2)
        .with_max_elapsed_time(None)
        .build();
    let mut generation = 0;
    loop {
        generation += 1;
        let link = match establish(&shared, generation).await {
            Ok(link) => link,
            Err(e) => {
                shared.attempt_failed(&e);
                let delay = backoff
                    .next_backoff()
                    .unwrap_or(shared.config.reconnect_max);
                tracing::warn!(error = %e, ?delay, "cannot reach the broker; retrying");
                if !pause(&shared, delay).await {
                    return;
                }
                continue;
            }
        };
        let opened = Instant::now();
        tracing::info!(generation, "connected to the broker");
        wait_until_lost(&shared, &link).await;
        shared.link.send_replace(None);
        if shared.shutdown.is_cancelled() {
            link.close(&shared.config).await;
            return;
        }
        // A half-dead connection may take the whole time limit to close: not our wait.
        let config = shared.config.clone();
        tokio::spawn(async move { link.close(&config).await });
        shared.set_last_error(&BusError::Unavailable(
            "the broker connection was lost; reconnecting".into(),
        ));
        tracing::warn!(generation, lived = ?opened.elapsed(), "lost the broker connection");
        if opened.elapsed() >= STABLE_FOR {
            backoff.reset();
        } else {
            let delay = backoff
                .next_backoff()
                .unwrap_or(shared.config.reconnect_max);
            if !pause(&shared, delay).await {
                return;
            }
        }
    }
}

/// Open a link, restart the registered consumers on it, then publish it to callers.
async fn establish(shared: &Shared, generation: u64) -> Result<Arc<Link>, BusError> {
    let link = Arc::new(Link::open(&shared.config, generation).await?);
    // Holding the registry lock while the link becomes current means a concurrent
    // `consume` either registers before (and is started here) or starts on this link.
    let mut consumers = shared.consumers.lock().await;
    consumers.retain(|c| c.wanted());
    for consumer in consumers.iter() {
        if let Err(e) = consumer.start(&link, &shared.config).await {
            link.close(&shared.config).await;
            return Err(e);
        }
    }
    shared.link.send_replace(Some(link.clone()));
    Ok(link)
}

/// Returns when the link fails or the bus shuts down.
async fn wait_until_lost(shared: &Shared, link: &Link) {
    let mut events = std::pin::pin!(link.connection.events_listener());
    let mut status = tokio::time::interval(STATUS_CHECK);
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = link.lost.notified() => return,
            event = events.next() => match event {
                Some(lapin::Event::Error(e)) if !link.is_up() => {
                    tracing::warn!(error = %e, "broker connection error");
                    return;
                }
                None => return,
                Some(_) => {}
            },
            _ = status.tick() => if !link.is_up() {
                return;
            },
        }
    }
}

/// Sleep unless the bus shuts down first; returns whether to go on.
async fn pause(shared: &Shared, delay: Duration) -> bool {
    tokio::select! {
        () = shared.shutdown.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}
