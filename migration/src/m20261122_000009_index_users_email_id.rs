//! Adds `users_email_id_idx` on `users (email, id)`: a covering index, so looking up the user
//! id of an address reads the index alone whether or not the account exists. Without it a hit
//! also reads the table row and a miss does not, which the timing tool (benches/timing.rs) can
//! tell apart on SQLite's sub-millisecond `check_reset_code`.

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
}
