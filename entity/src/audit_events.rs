//! `audit_events`: one row per security event of an account.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// NULL when no account was involved (a login for an unknown address).
    pub user_id: Option<Uuid>,
    /// `signup`, `verification`, `login`, `refresh_replay`, `password_reset`,
    /// `password_change`, `logout`, `session_revoked`, `admin_*` (an operator's action), …
    pub event: String,
    /// `success`, `failure`, `code_sent`, `account_exists`, …
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub session_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    /// The API key behind an admin action; NULL for every other event, and for admin actions
    /// taken on the command line (`codeward users`).
    pub api_key_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
