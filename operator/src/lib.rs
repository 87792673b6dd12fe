//! fairlead's operator crate: [`manifest`] loading (the YAML a user would
//! `kubectl apply`), the pure [`render`] from resources to a dataplane config,
//! and the `fairlead` command ([`cli`]): `check`, `render`, and `run` — a
//! standalone load balancer with the dataplane embedded ([`standalone`]).

#![forbid(unsafe_code)]

pub mod cli;
mod error;
pub mod manifest;
pub mod render;
pub mod standalone;

pub use error::{Error, Result, SourceError};
