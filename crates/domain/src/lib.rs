//! The clinic's rules, with no I/O: types, validation, roles and permissions,
//! clinic hours, and the audit chain's hash. Every other crate builds on these.

pub mod anchor;
pub mod assessment;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod clinics;
pub mod codes;
pub mod consent;
pub mod eligibility;
pub mod error;
pub mod ids;
pub mod instruments;
pub mod leads;
pub mod outcomes;
pub mod patients;
pub mod plans;
pub mod protocols;
pub mod scheduling;
pub mod substances;
pub mod time;
pub mod treatment;
pub mod versioned;

pub use error::{DomainError, FieldError};
