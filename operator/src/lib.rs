//! fairlead's operator crate: [`manifest`] loading (the YAML a user would
//! `kubectl apply`), the pure [`render`] from resources to a dataplane config,
//! and the `fairlead` command ([`cli`]): `check`, `render`, and `run` — a
//! standalone load balancer with the dataplane embedded ([`standalone`]).
//!
//! The in-cluster operator ([`incluster`], binary `fairlead-operator`) renders
//! with the same function in its [`controller`], pushes to the dataplanes'
//! admin APIs ([`fleet`], [`push`]) with the [`credentials`] it creates, and
//! elects a [`leader`] among its replicas.

#![forbid(unsafe_code)]

pub mod cli;
pub mod controller;
pub mod credentials;
mod error;
pub mod fleet;
pub mod incluster;
pub mod leader;
pub mod load_balancer;
pub mod manifest;
pub mod metrics;
pub mod push;
pub mod render;
pub mod standalone;

pub use error::{Error, Result, SourceError};
