//! `signing_keys`: the keys that sign access tokens, shared by every instance.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    /// The JWK thumbprint (RFC 7638), the `kid` of the tokens the key signs.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `EdDSA`, `ES256` or `RS256`.
    pub algorithm: String,
    /// `next` (published, not signing yet), `current` (signing) or `retired` (published until
    /// `published_until`).
    pub state: String,
    /// `current` or `next` on the one key in that state, NULL otherwise; unique.
    pub slot: Option<String>,
    /// The public key as a JWK (JSON), exactly as the key set publishes it.
    pub public_jwk: String,
    /// The private key, sealed under the pepper named by `pepper_key_id`.
    pub private_sealed: String,
    pub pepper_key_id: String,
    pub created_at: DateTimeUtc,
    /// When it started signing.
    pub activated_at: Option<DateTimeUtc>,
    /// When it stopped signing.
    pub retired_at: Option<DateTimeUtc>,
    /// Published until then (every token it signed has expired by then).
    pub published_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
