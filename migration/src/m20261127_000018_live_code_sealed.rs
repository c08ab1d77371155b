//! Adds `otp_codes.code_sealed`: the live code itself, sealed under the pepper and bound to
//! its user and purpose, so that a repeated request can email the same code again (a slow
//! first email never makes the code the user is typing wrong). Erased (NULL) once the code is
//! used, replaced or expired; rows from before have none, and simply get a new code.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OtpCodes::Table)
                    .add_column(ColumnDef::new(OtpCodes::CodeSealed).string_len(255).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OtpCodes::Table)
                    .drop_column(OtpCodes::CodeSealed)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum OtpCodes {
    Table,
    CodeSealed,
}
