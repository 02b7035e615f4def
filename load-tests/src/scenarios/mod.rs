//! One module per subcommand. Each builds its report and emits it.
//!
//! `seed` and `saturation` share [`load`]: optional ceiling first, then the end-to-end
//! run against the API with the same number of users and the same scripts.

pub mod async_jobs;
pub mod ceiling;
pub mod cold;
pub mod load;
pub mod saturation;
pub mod seed;
