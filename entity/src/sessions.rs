//! `sessions`: one per signed-in device. Its access tokens are signed JWTs naming it (`sid`),
//! not stored; its refresh tokens are in `refresh_tokens`.

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
    /// The current refresh token must be used before this (idle limit, capped by `expires_at`).
    pub refresh_expires_at: DateTimeUtc,
    /// Absolute end of the session.
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub last_used_at: DateTimeUtc,
    /// The latest authentication: the sign-in that started the session, or a later
    /// re-authentication (a refresh does not change it). Always set; the column is nullable
    /// only because migration 15 added it to existing rows (and backfilled them).
    pub auth_time: DateTimeUtc,
    /// How that authentication was made: `pwd` or `otp` (the access token's `amr`).
    pub auth_method: String,
    pub revoked_at: Option<DateTimeUtc>,
    /// `logout`, `revoked`, `replay`, `password_changed`, …
    pub revoked_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The session's user: a token check reads both in one statement.
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id"
    )]
    User,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
