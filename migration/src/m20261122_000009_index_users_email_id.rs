//! Adds `users_email_id_idx` on `users (email, id, email_verified_at)`: a covering index, so
//! looking up an address's account (its id and whether it is verified) reads the index alone
//! whether or not the account exists. Without it a hit also reads the table row and a miss
//! does not, which the timing tool (benches/timing.rs) tells apart on SQLite's
//! sub-millisecond code checks.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME: &str = "users_email_id_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NAME)
                    .table(Users::Table)
                    .col(Users::Email)
                    .col(Users::Id)
                    .col(Users::EmailVerifiedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(NAME).table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    EmailVerifiedAt,
}
