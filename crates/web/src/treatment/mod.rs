pub(crate) mod api;
pub(crate) mod intention;
pub(crate) mod pages;
pub(crate) mod protocols;
