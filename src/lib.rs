//! codeward: an OTP-centric authentication server, built as a library that the binary and the
//! integration tests share.

pub mod accounts;
pub mod api;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod housekeeping;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod otp;
pub mod passwords;
pub mod recovery;
pub mod services;
pub mod sessions;
pub mod startup;
pub mod telemetry;
pub mod timer;
