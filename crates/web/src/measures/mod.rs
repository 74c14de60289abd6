pub(crate) mod api;
pub(crate) mod outcomes;
pub(crate) mod pages;
