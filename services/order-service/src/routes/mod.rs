//! HTTP routes, one file per resource.

pub(crate) mod openapi;
pub(crate) mod orders;
pub(crate) mod schemas;
