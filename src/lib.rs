//! codeward: an OTP-centric authentication server, built as a library that the binary and the
//! integration tests share.
//!
//! Each folder is a layer, and a module only imports from the layers below its own (the test
//! `tests/api/structure.rs` holds this):
//!
//! - `http`: poem-openapi operations, one module per tag, the answers they share, and the
//!   server that accepts connections;
//! - `app`: the use-cases, one module per tag, each returning a named outcome;
//! - `core`: the code engine, password hashing, limits, sessions, audit and mail;
//! - `infra`: database, clock, timer, telemetry and metrics;
//! - `config`: the settings, from flags and `CODEWARD_*` variables;
//! - `domain`: values parsed once at the edge and trusted after.
//!
//! `startup` and `cli` stand above them all and wire them together.

pub mod app;
pub mod cli;
pub mod config;
pub mod core;
pub mod domain;
pub mod http;
pub mod infra;
pub mod startup;
