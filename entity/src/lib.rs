//! sea-orm entities of codeward's tables. Plain data: behaviour lives in the `codeward` crate and
//! the API schema lives in `codeward::http`, so the database schema never leaks into the contract.

pub mod api_keys;
pub mod audit_events;
pub mod email_outbox;
pub mod otp_budgets;
pub mod otp_codes;
pub mod otp_network_budgets;
pub mod rate_counters;
pub mod refresh_tokens;
pub mod sessions;
pub mod signing_keys;
pub mod users;
pub mod webhook_outbox;
