//! Today: the first page after sign-in, by role.

pub(crate) mod pages;
