pub(crate) mod api;
pub(crate) mod pages;
pub(crate) mod protocols;
