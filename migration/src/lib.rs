//! codeward's schema, one migration per change, each with `up` and `down`.

pub use sea_orm_migration::prelude::*;
pub use sea_orm_migration::seaql_migrations;

mod columns;

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
mod m20261127_000012_normalize_emails;
mod m20261127_000013_create_otp_network_budgets;
mod m20261127_000014_users_email_binary_collation;
mod m20261127_000015_signed_access_tokens;
mod m20261127_000016_create_api_keys;
mod m20261127_000017_decoys_for_new_purposes;
mod m20261127_000018_live_code_sealed;
mod m20261127_000019_admin_users;
mod m20261127_000020_create_webhook_outbox;

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
            Box::new(m20261127_000012_normalize_emails::Migration),
            Box::new(m20261127_000013_create_otp_network_budgets::Migration),
            Box::new(m20261127_000014_users_email_binary_collation::Migration),
            Box::new(m20261127_000015_signed_access_tokens::Migration),
            Box::new(m20261127_000016_create_api_keys::Migration),
            Box::new(m20261127_000017_decoys_for_new_purposes::Migration),
            Box::new(m20261127_000018_live_code_sealed::Migration),
            Box::new(m20261127_000019_admin_users::Migration),
            Box::new(m20261127_000020_create_webhook_outbox::Migration),
        ]
    }
}
