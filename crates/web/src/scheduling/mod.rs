pub(crate) mod admin;
pub(crate) mod api;
pub(crate) mod feeds;
pub(crate) mod pages;
