pub(crate) mod api;
pub(crate) mod codes;
pub(crate) mod decision;
pub(crate) mod eligibility;
pub(crate) mod pages;
