//! The shared contract, run against the in-process implementations.

use std::sync::Arc;
use tether_transport::contract;
use tether_transport::memory::{MemoryBus, MemoryRegistry, MemoryStore};

#[tokio::test]
async fn store_contract() {
    contract::store_contract(Arc::new(MemoryStore::default())).await;
}

#[tokio::test]
async fn bus_contract() {
    contract::bus_delivers_in_order_and_requeues(&MemoryBus::new(), "mem-bus").await;
}

#[tokio::test]
async fn registry_contract() {
    contract::registry_contract(Arc::new(MemoryRegistry::new()), "mem").await;
}
