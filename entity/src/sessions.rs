//! `sessions`: one per signed-in device; the access token is stored as its SHA-256 only.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_name: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Hex SHA-256 of the current access token.
    #[sea_orm(unique)]
    pub access_hash: String,
    pub access_expires_at: DateTimeUtc,
    /// The current refresh token must be used before this (idle limit, capped by `expires_at`).
    pub refresh_expires_at: DateTimeUtc,
    /// Absolute end of the session.
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub last_used_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    /// `logout`, `revoked`, `replay`, `password_changed`, …
    pub revoked_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
