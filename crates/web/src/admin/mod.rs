pub(crate) mod api;
pub(crate) mod hours;
pub(crate) mod pages;
