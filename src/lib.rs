//! codeward: an OTP-centric authentication server, built as a library that the binary and the
//! integration tests share.

pub mod api;
pub mod cli;
pub mod config;
pub mod db;
pub mod mail;
pub mod startup;
pub mod telemetry;
