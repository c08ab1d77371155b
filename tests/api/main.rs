//! The integration suite: the real server over real HTTP, on SQLite by default, or on the
//! PostgreSQL / MySQL server named by CODEWARD_TEST_POSTGRES_URL / CODEWARD_TEST_MYSQL_URL.

mod abuse;
mod activity;
mod admin;
mod api_keys;
mod cli;
mod codes;
mod connections;
mod deletion;
mod docs;
mod email_change;
mod email_normal_form;
mod errors;
mod field_errors;
mod helpers;
mod housekeeping;
mod introspection;
mod login_code;
mod mail;
mod metrics;
mod migrations;
mod ops;
mod password;
mod processes;
mod read_in_place;
mod reauth;
mod sessions;
mod signing_keys;
mod signup;
mod smtp;
mod spec;
mod startup;
mod structure;
mod tokens;
mod webhooks;
mod write_in_place;
