//! Tag `password`: recovery by code, and change for a signed-in user. Both end every other
//! session, kill the user's live codes and send a "password changed" notice.

use chrono::{DateTime, Utc};
use entity::users;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};

use crate::app::code_request::{
    AttemptFor, Redeemed, attempt_code, redeem_with_password, send_code,
};
use crate::app::session::take_password_attempt;
use crate::app::{AuthUser, Error, Services};
use crate::core::accounts::find_account;
use crate::core::audit::{self, Entry, Event, Outcome};
use crate::core::codes::Guesser;
use crate::core::limits::PasswordCheck;
use crate::core::mail::{Email, Message, outbox};
use crate::core::sessions::{self, RevokeReason};
use crate::core::webhooks::Event as Webhook;
use crate::domain::{
    EmailAddress, FieldProblem, OtpCode, PasswordAttempt, PendingPassword, Purpose, Requester,
};
use crate::infra::db;

/// What `check_reset_code` can answer.
pub enum CheckResetCode {
    /// Right and still usable; not used up.
    Usable,
    /// Wrong, expired, used, locked or unknown: one answer for all.
    InvalidCode,
}

/// What `reset_password` can answer.
pub enum ResetPassword {
    /// The password is changed and every session ended.
    Reset,
    /// Wrong, expired, used, locked or unknown: one answer for all.
    InvalidCode,
    /// The code was right but the new password is refused; the code stays usable.
    PasswordRefused(FieldProblem),
}

/// What `change_password` can answer.
pub enum ChangePassword {
    /// Changed; the other sessions ended, this one stays.
    Changed,
    /// The current password is wrong.
    WrongPassword,
    /// No current password was given, and the account has one: it is required.
    CurrentPasswordRequired,
    /// The new password does not meet the policy (judged with the user's address in mind).
    PasswordRefused(FieldProblem),
    /// The account is gone (deleted between authentication and now).
    SignedOut,
}

/// Emails a reset code to an existing account (verified or not; older reset codes die).
/// An unknown address gets no email and no usable code (only void rows), with the same answer.
pub async fn forgot_password(
    services: &Services,
    email: &EmailAddress,
    requester: &Requester,
) -> Result<(), Error> {
    let any_account = |_: &users::Model| true;
    let purpose = Purpose::ResetPassword;
    send_code(
        services,
        email,
        purpose,
        any_account,
        requester,
        "forgot_password",
    )
    .await
}

/// Whether the reset code is still usable. A wrong code counts as an attempt; a right one is
/// not used up (the two-screen flow: enter the code, then choose a password).
#[tracing::instrument(skip_all, fields(ip = requester.ip.as_deref()))]
pub async fn check_reset_code(
    services: &Services,
    email: &EmailAddress,
    code: Option<OtpCode>,
    requester: &Requester,
) -> Result<CheckResetCode, Error> {
    let now = services.clock.now();
    let Some(code) = code else {
        tracing::info!(outcome = "malformed_code", "check_reset_code");
        return Ok(CheckResetCode::InvalidCode);
    };
    let user_id = find_account(&services.lookups, email)
        .await?
        .map(|(id, _)| id);
    let guesser = Guesser {
        user_id,
        email,
        network: requester.network,
    };
    let purpose = Purpose::ResetPassword;
    // One short transaction, committed before the answer (see `attempt_code`).
    let txn = services.transactions.begin_writing().await?;
    let usable = services
        .codes
        .attempt(&txn, now, purpose, &code, guesser)
        .await?
        .is_some();
    txn.commit().await?;
    tracing::info!(
        user_id = user_id.map(tracing::field::display),
        outcome = if usable { "usable" } else { "invalid_code" },
        "check_reset_code"
    );
    Ok(if usable {
        CheckResetCode::Usable
    } else {
        CheckResetCode::InvalidCode
    })
}

/// Sets a new password with a reset code. The caller checked the password's length; its
/// strength is judged, and it is hashed, only once the code proved right, as at
/// `verify_signup`: every failure costs the same (no estimate, no hash), and a flood of
/// wrong codes costs database statements rather than zxcvbn and argon2 (with the hash first,
/// each wrong guess took a place in the hashing queue, and a flood of them made real
/// sign-ins answer 503). A refused password leaves the code usable. Also verifies an
/// unverified address (the code proved it).
#[tracing::instrument(skip_all, fields(ip = requester.ip.as_deref()))]
pub async fn reset_password(
    services: &Services,
    email: &EmailAddress,
    code: Option<OtpCode>,
    new_password: &PendingPassword,
    requester: &Requester,
) -> Result<ResetPassword, Error> {
    let now = services.clock.now();
    let Some(code) = code else {
        tracing::info!(outcome = "malformed_code", "reset_password");
        return Ok(ResetPassword::InvalidCode);
    };
    let user_id = find_account(&services.lookups, email)
        .await?
        .map(|(id, _)| id);
    let attempt = AttemptFor {
        purpose: Purpose::ResetPassword,
        event: Event::PasswordReset,
        operation: "reset_password",
    };
    let matched = attempt_code(services, now, email, user_id, &code, attempt, requester).await?;
    let Some(matched) = matched else {
        return Ok(ResetPassword::InvalidCode);
    };
    let redeemed = redeem_with_password(
        services,
        &matched,
        new_password,
        email,
        "new_password",
        "reset_password",
    );
    let (txn, user, password_hash, now) = match redeemed.await? {
        Redeemed::Ready {
            txn,
            user,
            password_hash,
            now,
        } => (txn, user, password_hash, now),
        Redeemed::PasswordRefused(problem) => return Ok(ResetPassword::PasswordRefused(problem)),
        Redeemed::InvalidCode => return Ok(ResetPassword::InvalidCode),
    };
    let user_id = user.id;
    let locale = user.locale.clone();
    let mut active = user.into_active_model();
    active.password_hash = Set(Some(password_hash));
    active.password_changed_at = Set(Some(now));
    let verifies = active.email_verified_at.as_ref().is_none();
    if verifies {
        active.email_verified_at = Set(Some(now));
    }
    active.updated_at = Set(now);
    active.update(&txn).await?;
    // A reset that verifies an address creates the account as code sign-in does.
    if verifies {
        let created = Webhook::user_created(user_id, email.as_str());
        services.webhooks.record(&txn, now, created).await?;
    }
    let changed = Webhook::user_password_changed(user_id);
    services.webhooks.record(&txn, now, changed).await?;
    let reason = RevokeReason::PasswordChanged;
    let sessions_ended = sessions::revoke_all_but(&txn, now, user_id, None, reason).await?;
    let codes_killed = services.codes.revoke_all(&txn, now, user_id).await?;
    enqueue_password_changed(&txn, now, email.as_str(), &locale, requester, None).await?;
    let entry = Entry {
        event: Event::PasswordReset,
        outcome: Outcome::Success,
        user_id: Some(user_id),
        session_id: None,
        requester,
    };
    audit::record(&txn, now, entry).await?;
    txn.commit().await?;
    services.webhooks.signal().wake();
    tracing::info!(%user_id, sessions_ended, codes_killed, outcome = "reset", "reset_password");
    Ok(ResetPassword::Reset)
}

/// Changes the password of the signed-in user after checking the current one. Other sessions
/// end; this one stays. Wrong current passwords are counted per account like failed
/// sign-ins (the unit is taken before the hash is verified), so a stolen access token is not
/// an unlimited password oracle. Without `current` (an account that has no password yet),
/// the session must have authenticated recently instead (`Error::ReauthenticationRequired`).
#[tracing::instrument(skip_all, fields(user_id = %auth.user_id, ip = requester.ip.as_deref()))]
pub async fn change_password(
    services: &Services,
    auth: &AuthUser,
    current: Option<&PasswordAttempt>,
    new_password: &str,
    requester: &Requester,
) -> Result<ChangePassword, Error> {
    let Some(user) = users::Entity::find_by_id(auth.user_id)
        .one(&services.reads)
        .await?
    else {
        return Ok(ChangePassword::SignedOut);
    };
    if current.is_none() {
        if user.password_hash.is_some() {
            tracing::info!(outcome = "current_password_required", "change_password");
            return Ok(ChangePassword::CurrentPasswordRequired);
        }
        crate::app::require_recent_authentication(services, auth)?;
    }
    // An address an earlier release stored and the normal form refuses (one for the operator
    // to resolve) is no reason to refuse the change: the password is then judged without it.
    let email = EmailAddress::parse(&user.email).ok();
    let judged = match PendingPassword::parse(new_password, "new_password") {
        Ok(pending) => {
            let passwords = &services.passwords;
            passwords
                .judge(&pending, email.as_ref(), "new_password")
                .await?
        }
        Err(problem) => Err(problem),
    };
    let new_password = match judged {
        Ok(password) => password,
        Err(problem) => return Ok(ChangePassword::PasswordRefused(problem)),
    };
    let signed_in = (Some(auth.user_id), Some(auth.session_id));
    if let Some(current) = current {
        let limits = &services.address_limits;
        let check = PasswordCheck::Change(auth.user_id);
        take_password_attempt(services, services.clock.now(), check, "change_password").await?;
        let verified = services
            .passwords
            .verify(current.expose(), user.password_hash.as_deref())
            .await;
        let current_ok = match verified {
            Ok(matches) => matches,
            Err(error) => {
                // Nothing was verified (a full queue, say): the unit was not a failure.
                limits
                    .give_back_password_attempt(&services.writer, check)
                    .await?;
                return Err(error.into());
            }
        };
        if !current_ok {
            // The unit taken above stays: it counts this failure.
            let entry = Entry {
                event: Event::PasswordChange,
                outcome: Outcome::WrongPassword,
                user_id: signed_in.0,
                session_id: signed_in.1,
                requester,
            };
            audit::record(&services.writer, services.clock.now(), entry).await?;
            tracing::info!(outcome = "wrong_password", "change_password");
            return Ok(ChangePassword::WrongPassword);
        }
        limits.password_accepted(&services.writer, check).await?;
    }
    let password_hash = services.passwords.hash(new_password.expose()).await?;
    let now = services.clock.now();
    let locale = user.locale.clone();
    // The notice goes where the account's mail goes, whatever today's rules make of it.
    let recipient = user.email.clone();
    let device = sessions::device(&services.reads, auth.session_id).await?;
    let txn = db::begin_write(&services.writer).await?;
    // Only over the hash that was checked (or its absence): a password set or changed by
    // another request meanwhile is not silently replaced.
    let checked_hash = match user.password_hash.as_deref() {
        Some(hash) => users::Column::PasswordHash.eq(hash),
        None => users::Column::PasswordHash.is_null(),
    };
    let changed = users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
        .col_expr(users::Column::PasswordChangedAt, Expr::value(now))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(auth.user_id))
        .filter(checked_hash)
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    if !changed {
        tracing::info!(outcome = "password_changed_meanwhile", "change_password");
        return Ok(if current.is_some() {
            ChangePassword::WrongPassword
        } else {
            ChangePassword::CurrentPasswordRequired
        });
    }
    let reason = RevokeReason::PasswordChanged;
    let sessions_ended =
        sessions::revoke_all_but(&txn, now, auth.user_id, signed_in.1, reason).await?;
    let codes_killed = services.codes.revoke_all(&txn, now, auth.user_id).await?;
    enqueue_password_changed(&txn, now, &recipient, &locale, requester, device).await?;
    let changed = Webhook::user_password_changed(auth.user_id);
    services.webhooks.record(&txn, now, changed).await?;
    let entry = Entry {
        event: Event::PasswordChange,
        outcome: Outcome::Success,
        user_id: signed_in.0,
        session_id: signed_in.1,
        requester,
    };
    audit::record(&txn, now, entry).await?;
    txn.commit().await?;
    services.webhooks.signal().wake();
    tracing::info!(
        sessions_ended,
        codes_killed,
        outcome = "changed",
        "change_password"
    );
    Ok(ChangePassword::Changed)
}

async fn enqueue_password_changed<C: sea_orm::ConnectionTrait>(
    txn: &C,
    now: DateTime<Utc>,
    to: &str,
    locale: &str,
    requester: &Requester,
    device: Option<String>,
) -> Result<(), sea_orm::DbErr> {
    let device = device.or_else(|| requester.user_agent.clone());
    outbox::enqueue(
        txn,
        Email {
            to: to.to_owned(),
            message: Message::PasswordChanged,
            locale: locale.to_owned(),
            context: serde_json::json!({
                "changed_at": now.format("%Y-%m-%d %H:%M UTC").to_string(),
                "device": device,
                "ip": requester.ip,
            }),
            code: None,
            expires_at: now + chrono::Duration::days(7),
        },
        now,
    )
    .await?;
    Ok(())
}
