//! codeward's schema, one migration per change, each with `up` and `down`.

pub use sea_orm_migration::prelude::*;
pub use sea_orm_migration::seaql_migrations;

mod columns;

/// The decoys' fixed ids (see `m20261122_000007_insert_decoy`); the code engine uses them.
pub mod decoy {
    /// How many decoys there are: a wrong guess for an unknown address picks one at random,
    /// so their rows are as spread out (and as cold) as those of the accounts real guesses hit.
    pub const COUNT: u128 = 64;
    /// User ids no `users` row has, so no address leads to them: `FIRST_USER_ID + i`.
    pub const FIRST_USER_ID: u128 = 0xdec0_dec0_dec0_4dec_8dec_0000_0000_0000;
    /// Code ids: `FIRST_CODE_ID + 2 i` (verify_email) and `+ 2 i + 1` (reset_password).
    pub const FIRST_CODE_ID: u128 = 0xdec0_dec0_dec0_4dec_8dec_0001_0000_0000;
    pub const PURPOSES: [&str; 2] = ["verify_email", "reset_password"];
}
mod m20261122_000001_create_users;
mod m20261122_000002_create_email_outbox;
mod m20261122_000003_create_otp_codes;
mod m20261122_000004_create_sessions;
mod m20261122_000005_add_password_changed_at;
mod m20261122_000006_create_rate_counters;
mod m20261122_000007_insert_decoy;
mod m20261122_000008_create_audit_events;
mod m20261122_000009_index_users_email_id;
mod m20261122_000010_index_live_codes;
mod m20261122_000011_widen_outbox_code;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_users::Migration),
            Box::new(m20261122_000002_create_email_outbox::Migration),
            Box::new(m20261122_000003_create_otp_codes::Migration),
            Box::new(m20261122_000004_create_sessions::Migration),
            Box::new(m20261122_000005_add_password_changed_at::Migration),
            Box::new(m20261122_000006_create_rate_counters::Migration),
            Box::new(m20261122_000007_insert_decoy::Migration),
            Box::new(m20261122_000008_create_audit_events::Migration),
            Box::new(m20261122_000009_index_users_email_id::Migration),
            Box::new(m20261122_000010_index_live_codes::Migration),
            Box::new(m20261122_000011_widen_outbox_code::Migration),
        ]
    }
}
