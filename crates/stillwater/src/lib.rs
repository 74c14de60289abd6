//! The `stillwater` binary's pieces: configuration, the server runner, the
//! demo clinic, the benchmark and database helpers for tests and tools.

pub mod anchors;
pub mod archive;
pub mod bench;
pub mod bench_billing;
pub mod bench_clinic;
pub mod bench_measures;
pub mod bench_schedule;
pub mod bench_soak;
pub mod bench_substances;
pub mod bench_treatment;
pub mod config;
pub mod demo;
pub mod demo_billing;
pub mod demo_intake;
pub mod demo_measures;
pub mod demo_substances;
pub mod demo_treatment;
pub mod server;
