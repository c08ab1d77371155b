//! Sign-in by emailed code (tag `session`): request a `login` code, verify it. Every answer
//! that could reveal whether an account exists is the same on every path, and the paths do the
//! same kind of work.

use entity::users;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
use uuid::Uuid;

use crate::app::code_request::{AttemptFor, attempt_code, take_code_send};
use crate::app::session::sign_in;
use crate::app::{Error, IssuedSession, Services};
use crate::core::accounts::{find_account, find_user};
use crate::core::audit::Event;
use crate::core::codes::CodeRecipient;
use crate::core::sessions::NewSession;
use crate::core::webhooks::Event as Webhook;
use crate::domain::{AuthMethod, EmailAddress, OtpCode, Purpose, Requester};
use crate::infra::db;

/// What `verify_login_code` can answer.
pub enum VerifyLoginCode {
    /// The code was right: the address is verified (if it was not yet) and the user signed in.
    SignedIn(IssuedSession),
    /// Unknown address, malformed, wrong, expired, used or dead code: one answer for all.
    InvalidCode,
}

/// Emails a `login` code to the account of `email`, verified or not. An address without an
/// account gets one only when `create_account` asks for it and sign-ups are open: it then gets
/// a new unverified account without a password (as `signup` makes one), and the code goes to
/// that account; verifying it proves the address. Otherwise nothing is sent, with the same
/// answer.
///
/// With `create_account` (and sign-ups open) every path writes the user row once and inserts
/// one set of budgets, as `signup` does: the address's account as it was, or the new one.
/// Without it no path writes a user row. Every path then runs the code statements once, void
/// for nobody.
#[tracing::instrument(skip_all, fields(ip = requester.ip.as_deref()))]
pub async fn request_login_code(
    services: &Services,
    email: &EmailAddress,
    locale: &str,
    create_account: bool,
    requester: &Requester,
) -> Result<(), Error> {
    let now = services.clock.now();
    // While sign-ups are closed, a request to create is an ordinary request for every
    // address alike, so what it does depends on nothing the caller could not know.
    let create = create_account && services.config.signup_open;
    let purpose = Purpose::Login;
    let txn = db::begin_write(&services.writer).await?;
    take_code_send(services, &txn, now, email, purpose, "request_login_code").await?;
    let existing = find_user(&txn, email).await?;
    let user = if create {
        let new_account = existing.is_none();
        let user = match existing {
            Some(user) => {
                // The same values written back: one UPDATE costing about what the INSERT of
                // a new account does (see `signup`).
                let mut active = user.into_active_model();
                active.email = Set(email.as_str().to_owned());
                active.locale = Set(active.locale.as_ref().clone());
                active.updated_at = Set(*active.updated_at.as_ref());
                active.update(&txn).await?
            }
            None => {
                users::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    email: Set(email.as_str().to_owned()),
                    password_hash: Set(None),
                    email_verified_at: Set(None),
                    password_changed_at: Set(None),
                    locale: Set(locale.to_owned()),
                    created_at: Set(now),
                    updated_at: Set(now),
                    disabled_at: Set(None),
                }
                .insert(&txn)
                .await?
            }
        };
        let budgets_of = if new_account { user.id } else { Uuid::new_v4() };
        services.codes.create_budgets(&txn, now, budgets_of).await?;
        Some(user)
    } else {
        existing
    };
    // A disabled account is an unknown address: no code, and never a second account (the
    // row written above was its own, as it was); the code statements run void, for nobody.
    let user = user.filter(|user| user.disabled_at.is_none());
    let recipient = CodeRecipient {
        user_id: user.as_ref().map(|user| user.id),
        email,
        locale: user.as_ref().map_or(locale, |user| user.locale.as_str()),
    };
    services
        .codes
        .issue(&txn, now, purpose, recipient, requester)
        .await?;
    txn.commit().await?;
    // The outbox is woken after the answer on every path alike (the `equal_time` transform).
    match user {
        Some(user) => {
            tracing::info!(user_id = %user.id, outcome = "code_sent", "request_login_code");
        }
        None => tracing::info!(outcome = "no_account", "request_login_code"),
    }
    Ok(())
}

/// Verifies a `login` code and signs the user in with `amr: ["otp"]`. A right code proves the
/// address: an unverified account (a sign-up not finished, or one `request_login_code` made
/// with `create_account`) becomes verified, still without a password.
#[tracing::instrument(skip_all, fields(ip = requester.ip.as_deref()))]
pub async fn verify_login_code(
    services: &Services,
    email: &EmailAddress,
    code: Option<OtpCode>,
    device_name: Option<String>,
    requester: &Requester,
) -> Result<VerifyLoginCode, Error> {
    let now = services.clock.now();
    let user_id = find_account(&services.lookups, email)
        .await?
        .map(|(id, _verified)| id);
    let Some(code) = code else {
        tracing::info!(outcome = "malformed_code", "verify_login_code");
        return Ok(VerifyLoginCode::InvalidCode);
    };
    let attempt = AttemptFor {
        purpose: Purpose::Login,
        event: Event::Login,
        operation: "verify_login_code",
    };
    let matched = attempt_code(services, now, email, user_id, &code, attempt, requester).await?;
    let Some(matched) = matched else {
        return Ok(VerifyLoginCode::InvalidCode);
    };
    let now = services.clock.now();
    let txn = db::begin_write(&services.writer).await?;
    // A match names its user: only an existing account's code can match.
    // Disabling revokes the account's codes; this closes a race with it.
    let Some(user) = users::Entity::find_by_id(matched.user_id())
        .one(&txn)
        .await?
        .filter(|user| user.disabled_at.is_none())
    else {
        return Ok(VerifyLoginCode::InvalidCode);
    };
    // Conditional: of many requests with the right code, exactly one uses it.
    if !services.codes.consume(&txn, now, &matched).await? {
        tracing::info!(user_id = %user.id, outcome = "invalid_code", "verify_login_code");
        return Ok(VerifyLoginCode::InvalidCode);
    }
    // The first verified code of an address without a verified account is the account's
    // creation, as far as the app's backend is concerned: `user.created` before `signed_in`.
    let user = if user.email_verified_at.is_none() {
        let mut active = user.into_active_model();
        active.email_verified_at = Set(Some(now));
        active.updated_at = Set(now);
        let user = active.update(&txn).await?;
        let created = Webhook::user_created(user.id, &user.email);
        services.webhooks.record(&txn, now, created).await?;
        user
    } else {
        user
    };
    let new = NewSession {
        user,
        device_name,
        method: AuthMethod::Code,
    };
    let session = sign_in(services, &txn, now, new, requester, Event::Login).await?;
    txn.commit().await?;
    services.webhooks.signal().wake();
    tracing::info!(user_id = %session.user.id, session_id = %session.session_id, outcome = "success", "verify_login_code");
    Ok(VerifyLoginCode::SignedIn(session))
}
