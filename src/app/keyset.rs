//! The public keys that verify access tokens, for the app's own backend.

use jsonwebtoken::jwk::JwkSet;

use crate::app::{Error, Services};

/// The key set as published now: the key that signs, the one pre-published to sign next, and
/// retired ones until every token they signed has expired.
pub async fn published(services: &Services) -> Result<JwkSet, Error> {
    let now = services.clock.now();
    Ok(services.tokens.keys.key_set(now).await?)
}
