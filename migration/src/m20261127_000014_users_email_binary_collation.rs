//! MySQL/MariaDB only: `users.email` compares byte for byte (`utf8mb4_bin`). Their default
//! collation (`utf8mb4_general_ci`) holds `jose@…` and `jösé@…` equal, so a request for one
//! address found the account of another: a reset code for `jösé`'s account went to `jose@`.
//! New addresses are in the normal form (ASCII, lowercase), where the two collations agree;
//! this closes it for the rows stored before. SQLite and PostgreSQL compare bytes already.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        collate(manager, "utf8mb4_bin").await
    }

    /// Back to the table's default. Fails with a duplicate-key error if two addresses now
    /// differ only by accents or case, which the old collation cannot tell apart.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        collate(manager, "utf8mb4_general_ci").await
    }
}

async fn collate(manager: &SchemaManager<'_>, collation: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DatabaseBackend::MySql {
        return Ok(());
    }
    // The column as migration 1 made it (varchar(254), not null); its indexes follow it.
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "ALTER TABLE `users` MODIFY `email` varchar(254) CHARACTER SET utf8mb4 COLLATE {collation} NOT NULL"
        ))
        .await?;
    Ok(())
}
