//! Who an API key is: the use-case behind the API-key security scheme, for every tag whose
//! operations take one.

use crate::app::{ApiKeyView, Error, Services};
use crate::core::api_keys;
use crate::domain::ApiKey;

/// The live key `key` is (its use noted, to the minute); `None` for an unknown or revoked one.
pub async fn authenticate(services: &Services, key: &ApiKey) -> Result<Option<ApiKeyView>, Error> {
    let now = services.clock.now();
    Ok(api_keys::authenticate(&services.lookups, &services.writer, now, key).await?)
}
