//! `users`: one row per email address, verified or not.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The address in its normal form (`codeward::domain::EmailAddress`: lowercase ASCII, the
    /// domain as its IDNA A-label); unique. Rows migration 12 could not rewrite keep an older
    /// spelling until an operator resolves them.
    #[sea_orm(unique)]
    pub email: String,
    /// argon2id PHC string; `None` until the address is verified and a password bound.
    pub password_hash: Option<String>,
    pub email_verified_at: Option<DateTimeUtc>,
    /// When a reset or a change last set the password.
    pub password_changed_at: Option<DateTimeUtc>,
    /// BCP 47 tag used to pick email templates.
    pub locale: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// When an operator disabled the account (admin API or `codeward users disable`); `None`
    /// while it is enabled. A disabled account is answered like an unknown address.
    pub disabled_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
