//! The end-to-end tests, one binary (the AWS SDK is linked once), a module per area. Each test
//! starts what it needs (its own moto on a free port, the template deployed into it, the real
//! function and `ops` binaries) and stops it by PID, so tests run in parallel without sharing
//! anything. The harness is the `e2e` library (`tests/src/`).

mod chaos;
mod deploy;
mod hostile;
mod lambda_placement;
mod lifecycle;
mod lifecycle_chaos;
mod metrics;
mod ops;
mod pipeline;
mod prerequisites;
mod reconciliation;
mod template;
mod welcome;
