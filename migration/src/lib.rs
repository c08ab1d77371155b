//! codeward's schema, one migration per change, each with `up` and `down`.

pub use sea_orm_migration::prelude::*;
pub use sea_orm_migration::seaql_migrations;

mod columns;

/// The decoy's fixed ids (see `m20261122_000007_insert_decoy`); the code engine uses them.
pub mod decoy {
    /// A user id no `users` row has, so no address leads to it.
    pub const USER_ID: u128 = 0xdec0_dec0_dec0_4dec_8dec_0000_0000_0001;
    /// (purpose, code id) of the decoy's expired code per purpose.
    pub const CODES: [(&str, u128); 2] = [
        ("verify_email", 0xdec0_dec0_dec0_4dec_8dec_0000_0000_0002),
        ("reset_password", 0xdec0_dec0_dec0_4dec_8dec_0000_0000_0003),
    ];
}
mod m20261122_000001_create_users;
mod m20261122_000002_create_email_outbox;
mod m20261122_000003_create_otp_codes;
mod m20261122_000004_create_sessions;
mod m20261122_000005_add_password_changed_at;
mod m20261122_000006_create_rate_counters;
mod m20261122_000007_insert_decoy;

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
        ]
    }
}
