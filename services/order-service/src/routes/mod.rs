//! HTTP routes, one file per resource.

pub mod openapi;
pub mod orders;
