//! Creates `otp_network_budgets`: the wrong code attempts of one user and purpose from one
//! client network (an IPv4 address or an IPv6 /64) in a 24-hour window. With it, a stranger
//! guessing from one network spends that network's budget only, and `otp_budgets` becomes the
//! account-wide ceiling over all networks together.
//!
//! No foreign key on `user_id`, as in `otp_budgets`: a wrong guess for an unknown address
//! spends a budget kept under an id derived from the address, which no user has. Rows are
//! created by the first guess from a network and removed by housekeeping once their window is
//! over.

use sea_orm_migration::prelude::*;

use crate::columns::instant;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OtpNetworkBudgets::Table)
                    .col(ColumnDef::new(OtpNetworkBudgets::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(OtpNetworkBudgets::Purpose)
                            .string_len(32)
                            .not_null(),
                    )
                    // `203.0.113.7`, `2001:db8:1:2::/64` (at most 24 characters) or `unknown`.
                    .col(
                        ColumnDef::new(OtpNetworkBudgets::Network)
                            .string_len(45)
                            .not_null(),
                    )
                    .col(instant(manager, OtpNetworkBudgets::WindowStart).not_null())
                    .col(
                        ColumnDef::new(OtpNetworkBudgets::Failures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    // Written by every guess, so the upsert that makes sure the row exists
                    // writes a row whether or not it was there: a network's first guess then
                    // costs what its later ones cost.
                    .col(instant(manager, OtpNetworkBudgets::LastAttemptAt).not_null())
                    .primary_key(
                        Index::create()
                            .col(OtpNetworkBudgets::UserId)
                            .col(OtpNetworkBudgets::Purpose)
                            .col(OtpNetworkBudgets::Network),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OtpNetworkBudgets::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OtpNetworkBudgets {
    Table,
    UserId,
    Purpose,
    Network,
    WindowStart,
    Failures,
    LastAttemptAt,
}
