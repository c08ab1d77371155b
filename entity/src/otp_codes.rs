//! `otp_codes`: one row per issued code; it is checked only through its HMAC. While live, the
//! code is also kept sealed under the pepper so a repeated request can email it again.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "otp_codes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// `verify_email`, `reset_password`, …
    pub purpose: String,
    /// Hex HMAC-SHA256 of purpose ‖ user id ‖ code under the pepper `key_id`.
    pub code_hash: String,
    pub key_id: String,
    /// The address the code was sent to.
    pub email: String,
    /// Attempts made (right or wrong); none is accepted once `max_attempts` were made.
    pub attempts: i32,
    pub max_attempts: i32,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub consumed_at: Option<DateTimeUtc>,
    /// Set when a newer code of the same user and purpose replaced this one.
    pub revoked_at: Option<DateTimeUtc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The code sealed under the pepper (bound to user and purpose) while it is live; NULL once
    /// used, replaced or expired.
    pub code_sealed: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
