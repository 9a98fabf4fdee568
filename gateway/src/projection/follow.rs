//! The follower: reads the outbox on a clock, so that the writes other
//! processes sharing the store commit reach this projection too (this
//! gateway's own writes are applied before they are answered, and are
//! already held when the follower reads), and replicas over one store
//! answer alike.

use std::sync::Arc;
use std::time::Duration;

use super::Projection;
use crate::registry::PopulationStore;

/// How often the follower reads the outbox: a write through another
/// gateway is seen here within this (and the read's time).
pub const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Catches `projection` up with `store` every `every`, for as long as the
/// task runs (`serve` aborts it when it returns). A failed read is logged and tried again at the next tick:
/// verification goes on from what is held.
pub async fn follow(projection: Arc<Projection>, store: Arc<dyn PopulationStore>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let (projection, store) = (projection.clone(), store.clone());
        let caught_up = tokio::task::spawn_blocking(move || projection.catch_up(&*store)).await;
        match caught_up {
            Ok(Ok(_)) => failing = false,
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "the projection could not read the outbox; verification answers from what it holds");
            }
            Ok(Err(_)) => {}
            Err(e) => tracing::error!(error = %e, "the projection's follower failed"),
        }
    }
}
