pub(crate) mod api;
pub(crate) mod eligibility;
pub(crate) mod pages;
