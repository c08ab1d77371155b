//! A code request for an address, shared by `resend_signup_code` and `forgot_password`.

use entity::users;

use crate::app::{Error, Services};
use crate::core::accounts::find_user;
use crate::core::codes::CodeRecipient;
use crate::domain::{EmailAddress, Purpose, Requester};
use crate::infra::db;

/// Takes the address's send counters (refused: `Error::Limited`), then issues a code of
/// `purpose` to its account if `eligible` says so, or does the same work for nobody (void
/// rows only). The counters stay taken either way, so unknown addresses count like known ones,
/// and the answer and its time are the same.
#[tracing::instrument(skip_all, fields(ip = requester.ip.as_deref()))]
pub(super) async fn send_code(
    services: &Services,
    email: &EmailAddress,
    purpose: Purpose,
    eligible: impl Fn(&users::Model) -> bool,
    requester: &Requester,
    operation: &'static str,
) -> Result<(), Error> {
    let now = services.clock.now();
    let txn = db::begin_write(&services.db).await?;
    if let Err(error) = services
        .address_limits
        .take_code_send(&txn, now, email, purpose)
        .await
    {
        if let Error::Limited(limited) = &error {
            tracing::info!(
                outcome = "rate_limited",
                policy = limited.policy,
                "{operation}"
            );
        }
        return Err(error);
    }
    let user = find_user(&txn, email).await?.filter(|user| eligible(user));
    let recipient = CodeRecipient {
        user_id: user.as_ref().map(|user| user.id),
        email,
        locale: user.as_ref().map_or("en", |user| user.locale.as_str()),
    };
    services
        .codes
        .issue(&txn, now, purpose, recipient, requester)
        .await?;
    txn.commit().await?;
    // The email worker is woken after the answer, on every path alike: working on a real
    // email while this request is still running would tell the paths apart.
    match user {
        Some(user) => tracing::info!(user_id = %user.id, outcome = "code_sent", "{operation}"),
        None => tracing::info!(outcome = "no_account", "{operation}"),
    }
    Ok(())
}
