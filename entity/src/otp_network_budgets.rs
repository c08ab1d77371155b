//! `otp_network_budgets`: wrong code attempts per user, purpose and client network within a
//! 24-hour window. `otp_budgets` holds the account-wide ceiling over all networks.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "otp_network_budgets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub purpose: String,
    /// The client network: an IPv4 address, an IPv6 /64 (`2001:db8:1:2::/64`), or `unknown`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub network: String,
    pub window_start: DateTimeUtc,
    pub failures: i32,
    /// When a guess from this network last came (each guess writes it).
    pub last_attempt_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
