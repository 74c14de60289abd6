//! Integration tests: store and HTTP, each run on SQLite and on PostgreSQL
//! (when STILLWATER_TEST_DATABASE_URL is set; CI always sets it).
//! One test binary keeps linking cheap.

mod helpers;

mod api;
mod audit;
mod auth;
mod billing;
mod intake;
mod measures;
mod pages;
mod permissions;
mod portal;
mod safety;
mod scheduling;
mod schema;
mod substances;
mod today;
mod trail_file;
mod treatment;
mod twins;
mod verify;
