//! Tag `session`, re-authentication: a signed-in user proves again who they are (password or
//! a `reauthenticate` code), and their session gets a fresh `auth_time` and a rotated pair.

use entity::users;
use sea_orm::EntityTrait;

use crate::app::code_request::{AttemptFor, attempt_code, send_code};
use crate::app::session::take_password_attempt;
use crate::app::{AuthUser, Error, IssuedSession, Services};
use crate::core::audit::{self, Entry, Event, Outcome};
use crate::core::limits::PasswordCheck;
use crate::core::sessions;
use crate::domain::{AuthMethod, EmailAddress, OtpCode, PasswordAttempt, Purpose, Requester};
use crate::infra::db;

/// What `request_reauth_code` can answer.
pub enum RequestReauthCode {
    /// A code is on its way to the account's address (this one).
    Sent(EmailAddress),
    /// The account is gone (deleted between authentication and now), or its stored address
    /// is one today's rules refuse, so no code can be addressed to it.
    SignedOut,
}

/// How the user proves who they are again.
pub enum Proof {
    Password(PasswordAttempt),
    /// `None`: not even a well-formed code.
    Code(Option<OtpCode>),
}

/// What `reauthenticate` can answer.
pub enum Reauthenticate {
    /// The same session, authenticated now, with a rotated pair.
    Renewed(IssuedSession),
    /// The password is wrong (counted like a wrong current password at a change).
    WrongPassword,
    /// Wrong, expired, used, locked or unknown code: one answer for all.
    InvalidCode,
    /// The session or the account ended meanwhile.
    SignedOut,
}

/// Emails a `reauthenticate` code to the signed-in user's own address, under the address's
/// send cooldown and hourly cap like every code request.
#[tracing::instrument(skip_all, fields(user_id = %auth.user_id, ip = requester.ip.as_deref()))]
pub async fn request_reauth_code(
    services: &Services,
    auth: &AuthUser,
    requester: &Requester,
) -> Result<RequestReauthCode, Error> {
    let Some(user) = users::Entity::find_by_id(auth.user_id)
        .one(&services.reads)
        .await?
    else {
        return Ok(RequestReauthCode::SignedOut);
    };
    let Ok(email) = EmailAddress::parse(&user.email) else {
        tracing::warn!(outcome = "unusable_address", "request_reauth_code");
        return Ok(RequestReauthCode::SignedOut);
    };
    let user_id = auth.user_id;
    let this_account = move |found: &users::Model| found.id == user_id;
    let purpose = Purpose::Reauthenticate;
    send_code(
        services,
        &email,
        purpose,
        this_account,
        requester,
        "request_reauth_code",
    )
    .await?;
    Ok(RequestReauthCode::Sent(email))
}

/// Re-authenticates the caller's session with the account's password or a `reauthenticate`
/// code. A wrong password takes a unit of the account's password-failure counter (the one
/// `change_password` uses), taken before the hash is verified, so a stolen access token is
/// not an unlimited password oracle; a wrong code counts as an attempt at the live code.
#[tracing::instrument(skip_all, fields(user_id = %auth.user_id, ip = requester.ip.as_deref()))]
pub async fn reauthenticate(
    services: &Services,
    auth: &AuthUser,
    proof: Proof,
    requester: &Requester,
) -> Result<Reauthenticate, Error> {
    let Some(user) = users::Entity::find_by_id(auth.user_id)
        .one(&services.reads)
        .await?
    else {
        return Ok(Reauthenticate::SignedOut);
    };
    let method = match proof {
        Proof::Password(password) => {
            if !password_matches(services, auth, &user, &password, requester).await? {
                return Ok(Reauthenticate::WrongPassword);
            }
            None
        }
        Proof::Code(code) => {
            let Some(code) = code else {
                tracing::info!(outcome = "malformed_code", "reauthenticate");
                return Ok(Reauthenticate::InvalidCode);
            };
            let Ok(email) = EmailAddress::parse(&user.email) else {
                return Ok(Reauthenticate::InvalidCode);
            };
            let attempt = AttemptFor {
                purpose: Purpose::Reauthenticate,
                event: Event::Reauthentication,
                operation: "reauthenticate",
            };
            let now = services.clock.now();
            let user_id = Some(user.id);
            let matched =
                attempt_code(services, now, &email, user_id, &code, attempt, requester).await?;
            let Some(matched) = matched else {
                return Ok(Reauthenticate::InvalidCode);
            };
            Some(matched)
        }
    };
    let now = services.clock.now();
    let txn = db::begin_write(&services.writer).await?;
    let auth_method = match &method {
        // The code is spent if and only if the session is renewed: both in this transaction.
        Some(matched) => {
            if !services.codes.consume(&txn, now, matched).await? {
                tracing::info!(outcome = "invalid_code", "reauthenticate");
                return Ok(Reauthenticate::InvalidCode);
            }
            AuthMethod::Code
        }
        None => AuthMethod::Password,
    };
    let (lifetimes, tokens) = (&services.sessions, &services.tokens);
    let renewed = sessions::reauthenticate(
        &txn,
        now,
        lifetimes,
        tokens,
        auth.user_id,
        auth.session_id,
        auth_method,
        requester,
    )
    .await?;
    let Some(session) = renewed else {
        tracing::info!(outcome = "signed_out", "reauthenticate");
        return Ok(Reauthenticate::SignedOut);
    };
    let entry = Entry {
        event: Event::Reauthentication,
        outcome: Outcome::Success,
        user_id: Some(auth.user_id),
        session_id: Some(auth.session_id),
        requester,
    };
    audit::record(&txn, now, entry).await?;
    txn.commit().await?;
    tracing::info!(
        session_id = %auth.session_id,
        method = auth_method.amr(),
        outcome = "reauthenticated",
        "reauthenticate"
    );
    Ok(Reauthenticate::Renewed(session))
}

/// Checks `password` against the account's hash (a dummy where it has none), counting a
/// failure toward the account's password delay and recording it.
async fn password_matches(
    services: &Services,
    auth: &AuthUser,
    user: &users::Model,
    password: &PasswordAttempt,
    requester: &Requester,
) -> Result<bool, Error> {
    let limits = &services.address_limits;
    let check = PasswordCheck::Change(auth.user_id);
    take_password_attempt(services, services.clock.now(), check, "reauthenticate").await?;
    let verified = services
        .passwords
        .verify(password.expose(), user.password_hash.as_deref())
        .await;
    let matches = match verified {
        Ok(matches) => matches,
        Err(error) => {
            // Nothing was verified (a full queue, say): the unit was not a failure.
            limits
                .give_back_password_attempt(&services.writer, check)
                .await?;
            return Err(error.into());
        }
    };
    if matches {
        limits.password_accepted(&services.writer, check).await?;
        return Ok(true);
    }
    // The unit taken above stays: it counts this failure.
    let entry = Entry {
        event: Event::Reauthentication,
        outcome: Outcome::WrongPassword,
        user_id: Some(auth.user_id),
        session_id: Some(auth.session_id),
        requester,
    };
    audit::record(&services.writer, services.clock.now(), entry).await?;
    tracing::info!(outcome = "wrong_password", "reauthenticate");
    Ok(false)
}
