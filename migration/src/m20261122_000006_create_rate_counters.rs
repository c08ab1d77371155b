//! Creates `rate_counters`: fixed-window counters shared by every instance, keyed by an HMAC of
//! what they count (an address and a scope), so unknown addresses are counted like known ones
//! and no address is stored in clear.

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
                    .table(RateCounters::Table)
                    .col(
                        ColumnDef::new(RateCounters::Key)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(instant(manager, RateCounters::WindowStart).not_null())
                    .col(
                        ColumnDef::new(RateCounters::Count)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(instant(manager, RateCounters::BlockedUntil).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RateCounters::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RateCounters {
    Table,
    Key,
    WindowStart,
    Count,
    BlockedUntil,
}
