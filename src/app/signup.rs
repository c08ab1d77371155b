//! Tag `signup`: start a sign-up, resend its code, verify it. Every answer that could reveal
//! whether an account exists is the same on every path, and the paths do the same kind of work.

use entity::users;
use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
use uuid::Uuid;

use crate::app::code_request::{
    AttemptFor, Redeemed, attempt_code, redeem_with_password, send_code, take_code_send,
};
use crate::app::session::sign_in;
use crate::app::{Error, IssuedSession, Services};
use crate::core::accounts::{find_account, find_user};
use crate::core::audit::{self, Entry, Event, Outcome};
use crate::core::codes::CodeRecipient;
use crate::core::mail::{Email, Message};
use crate::core::sessions::NewSession;
use crate::core::webhooks::Event as Webhook;
use crate::domain::{
    AuthMethod, EmailAddress, FieldProblem, OtpCode, PendingPassword, Purpose, Requester,
};
use crate::infra::db;

/// What `verify_signup` can answer.
pub enum VerifySignup {
    /// The address is verified, the password bound and the user signed in.
    SignedIn(IssuedSession),
    /// Unknown address, verified account, malformed, wrong, expired, used or dead code: one
    /// answer for all.
    InvalidCode,
    /// The code was right but the password is refused; the code stays usable.
    PasswordRefused(FieldProblem),
}

/// Starts or restarts a sign-up. A new address gets an unverified account and a code, an
/// unverified one a new code (older codes die), a verified one an "account exists" email
/// instead of a code. The password was checked by the caller and is not stored: it is bound
/// when the code is verified, so whoever proves the mailbox chooses the password.
#[tracing::instrument(skip_all, fields(ip = requester.ip.as_deref()))]
pub async fn signup(
    services: &Services,
    email: &EmailAddress,
    locale: &str,
    requester: &Requester,
) -> Result<(), Error> {
    if !services.config.signup_open {
        // Closed for every address alike: the same 202, nothing sent, nothing created.
        tracing::info!(outcome = "signup_closed", "signup");
        return Ok(());
    }
    let now = services.clock.now();
    let txn = db::begin_write(&services.writer).await?;
    take_code_send(services, &txn, now, email, Purpose::VerifyEmail, "signup").await?;
    let existing = find_user(&txn, email).await?;
    let verified = existing
        .as_ref()
        .is_some_and(|user| user.email_verified_at.is_some());
    // A disabled account keeps its row as it is and gets nothing: the code statements run
    // void, for nobody, as the answer is an unknown address's.
    let disabled = existing
        .as_ref()
        .is_some_and(|user| user.disabled_at.is_some());
    // Every path writes the user row once, inserts one set of budgets and runs the code
    // statements once, so the answer takes the same time whether the address is new,
    // unverified or verified.
    let new_account = existing.is_none();
    let user = match existing {
        Some(user) => {
            let mut active = user.into_active_model();
            // One statement for both: the address is written back as it is, so its index
            // entries are rewritten as a new account's are inserted, and this UPDATE costs
            // about what the INSERT below does.
            active.email = Set(email.as_str().to_owned());
            if verified || disabled {
                // Same values: a verified account's locale stays its own.
                active.locale = Set(active.locale.as_ref().clone());
                active.updated_at = Set(*active.updated_at.as_ref());
            } else {
                active.locale = Set(locale.to_owned());
                active.updated_at = Set(now);
            }
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
    let recipient = CodeRecipient {
        user_id: (!disabled).then_some(user.id),
        email,
        locale: &user.locale,
    };
    if disabled {
        services
            .codes
            .issue(&txn, now, Purpose::VerifyEmail, recipient, requester)
            .await?;
    } else if verified {
        // No code for a verified account: an "account exists" notice, at the cost of a code.
        let notice = Email {
            to: email.as_str().to_owned(),
            message: Message::AccountExists,
            locale: user.locale.clone(),
            context: serde_json::json!({}),
            code: None,
            expires_at: now + chrono::Duration::hours(24),
        };
        services
            .codes
            .notice_instead(
                &txn,
                now,
                Purpose::VerifyEmail,
                recipient,
                requester,
                notice,
            )
            .await?;
    } else {
        services
            .codes
            .issue(&txn, now, Purpose::VerifyEmail, recipient, requester)
            .await?;
    }
    let outcome = if disabled {
        Outcome::AccountDisabled
    } else if verified {
        Outcome::AccountExists
    } else {
        Outcome::CodeSent
    };
    let entry = Entry {
        event: Event::Signup,
        outcome,
        user_id: Some(user.id),
        session_id: None,
        requester,
    };
    audit::record(&txn, now, entry).await?;
    txn.commit().await?;
    tracing::info!(user_id = %user.id, outcome = outcome.name(), "signup");
    Ok(())
}

/// Sends a new sign-up code to an unverified account; does nothing for other addresses, with
/// the same answer.
pub async fn resend_signup_code(
    services: &Services,
    email: &EmailAddress,
    requester: &Requester,
) -> Result<(), Error> {
    let unverified = |user: &users::Model| user.email_verified_at.is_none();
    let purpose = Purpose::VerifyEmail;
    send_code(
        services,
        email,
        purpose,
        unverified,
        requester,
        "resend_signup_code",
    )
    .await
}

/// Verifies the sign-up code, binds the password and signs the user in. The password's
/// strength is judged only for a right code; a refused password leaves the code unused.
#[tracing::instrument(skip_all, fields(ip = requester.ip.as_deref()))]
pub async fn verify_signup(
    services: &Services,
    email: &EmailAddress,
    code: Option<OtpCode>,
    password: &PendingPassword,
    device_name: Option<String>,
    requester: &Requester,
) -> Result<VerifySignup, Error> {
    let now = services.clock.now();
    // A verified account is treated as unknown: its guesses go to a decoy.
    let user_id = find_account(&services.lookups, email)
        .await?
        .and_then(|(id, verified)| (!verified).then_some(id));
    let Some(code) = code else {
        tracing::info!(outcome = "malformed_code", "verify_signup");
        return Ok(VerifySignup::InvalidCode);
    };
    let attempt = AttemptFor {
        purpose: Purpose::VerifyEmail,
        event: Event::Verification,
        operation: "verify_signup",
    };
    let matched = attempt_code(services, now, email, user_id, &code, attempt, requester).await?;
    let Some(matched) = matched else {
        return Ok(VerifySignup::InvalidCode);
    };
    let redeemed = redeem_with_password(
        services,
        &matched,
        password,
        email,
        "password",
        "verify_signup",
    );
    let (txn, user, password_hash, now) = match redeemed.await? {
        Redeemed::Ready {
            txn,
            user,
            password_hash,
            now,
        } => (txn, user, password_hash, now),
        Redeemed::PasswordRefused(problem) => return Ok(VerifySignup::PasswordRefused(problem)),
        Redeemed::InvalidCode => return Ok(VerifySignup::InvalidCode),
    };
    let mut active = user.into_active_model();
    active.password_hash = Set(Some(password_hash));
    active.email_verified_at = Set(Some(now));
    active.updated_at = Set(now);
    let user = active.update(&txn).await?;
    let created = Webhook::user_created(user.id, &user.email);
    services.webhooks.record(&txn, now, created).await?;
    let new = NewSession {
        user,
        device_name,
        method: AuthMethod::Code,
    };
    let event = Event::Verification;
    let session = sign_in(services, &txn, now, new, requester, event).await?;
    txn.commit().await?;
    services.webhooks.signal().wake();
    tracing::info!(user_id = %session.user.id, session_id = %session.session_id, outcome = "verified", "verify_signup");
    Ok(VerifySignup::SignedIn(session))
}
