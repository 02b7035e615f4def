//! The shared contract, run against the in-process implementations.

use std::sync::Arc;
use tether_transport::contract;
use tether_transport::memory::{MemoryBus, MemoryRegistry, MemoryStore};

#[tokio::test]
async fn store_contract() {
    let store = Arc::new(MemoryStore::default());
    contract::store_transitions_only_move_forward(store.as_ref()).await;
    contract::store_status_changes_are_logged(store.as_ref()).await;
    contract::store_update_expecting_checks_the_belief(store.as_ref()).await;
    contract::store_wait_wakes_on_finish(store.clone()).await;
    contract::store_events_resume(store.clone()).await;
    contract::store_seq_per_session(store.as_ref()).await;
    contract::store_lists_session_jobs(store.as_ref()).await;
    contract::store_idempotency_keys(store.clone()).await;
    contract::store_webhook_outbox(store.as_ref()).await;
    contract::store_outbox_claims_are_exclusive(store.clone()).await;
    contract::store_indexes_active_jobs_by_node(store.as_ref()).await;
    contract::store_undelivered_only_ends_queued_jobs(store.as_ref()).await;
    contract::store_publish_turns_follow_seq(store.clone()).await;
}

#[tokio::test]
async fn bus_contract() {
    contract::bus_delivers_in_order_and_requeues(&MemoryBus::new(), "mem-bus").await;
}

#[tokio::test]
async fn registry_contract() {
    contract::registry_binds_atomically(Arc::new(MemoryRegistry::new()), "mem").await;
    contract::registry_tracks_node_loss(Arc::new(MemoryRegistry::new()), "mem").await;
    contract::registry_places_atomically(Arc::new(MemoryRegistry::new()), "mem").await;
}
