//! The console's queue depths as gauges. They change with every watcher that comes and goes,
//! so they are sampled when metrics are read rather than counted at every change.

use crate::AppState;

/// Sets the queue-depth gauges from the console's state now.
pub fn record_depths(state: &AppState) {
    let depth = |n: usize| n as f64;
    metrics::gauge!("airlock_event_subscribers").set(depth(state.events.subscribers()));
    metrics::gauge!("airlock_event_outbox_depth").set(depth(state.events.outbox_depth()));
    metrics::gauge!("airlock_watch_pollers").set(depth(state.pollers.running()));
}
