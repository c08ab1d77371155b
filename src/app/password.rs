//! Password recovery by code, and password change for a signed-in user. Both end every other
//! session, kill the user's live codes and send a "password changed" notice.

use chrono::{DateTime, Utc};
use entity::users;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};

use crate::app::{Error, Services};
use crate::core::accounts::find_account;
use crate::core::audit::{self, Event};
use crate::core::codes::Requester;
use crate::core::limits::Limited;
use crate::core::mail::{Email, Message, outbox};
use crate::core::sessions::{self, AuthUser, RevokeReason};
use crate::domain::{EmailAddress, NewPassword, OtpCode, PasswordAttempt, Purpose};
use crate::infra::db;

/// Emails a reset code to an existing account (verified or not; older reset codes die).
/// An unknown address gets no email and no usable code (only void rows), with the same answer.
pub async fn forgot_password(
    services: &Services,
    email: &EmailAddress,
    requester: &Requester,
) -> Result<Result<(), Limited>, Error> {
    let any_account = |_: &users::Model| true;
    crate::app::signup::send_code(
        services,
        email,
        Purpose::ResetPassword,
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
) -> Result<bool, Error> {
    let now = services.clock.now();
    let Some(code) = code else {
        tracing::info!(outcome = "malformed_code", "check_reset_code");
        return Ok(false);
    };
    let user_id = find_account(&services.db, email).await?.map(|(id, _)| id);
    let usable = services
        .codes
        .attempt(&services.db, now, user_id, Purpose::ResetPassword, &code)
        .await?
        .is_some();
    tracing::info!(
        user_id = user_id.map(tracing::field::display),
        outcome = if usable { "usable" } else { "invalid_code" },
        "check_reset_code"
    );
    Ok(usable)
}

/// Sets a new password with a reset code. The caller checked the policy first, so a weak
/// password never uses up the code. Also verifies an unverified address (the code proved it).
/// `false` for every kind of bad code.
#[tracing::instrument(skip_all, fields(ip = requester.ip.as_deref()))]
pub async fn reset_password(
    services: &Services,
    email: &EmailAddress,
    code: Option<OtpCode>,
    new_password: &NewPassword,
    requester: &Requester,
) -> Result<bool, Error> {
    let password_hash = services.passwords.hash(new_password.expose()).await?;
    let now = services.clock.now();
    let Some(code) = code else {
        tracing::info!(outcome = "malformed_code", "reset_password");
        return Ok(false);
    };
    let user_id = find_account(&services.db, email).await?.map(|(id, _)| id);
    let matched = services
        .codes
        .attempt(&services.db, now, user_id, Purpose::ResetPassword, &code)
        .await?;
    let Some(matched) = matched else {
        // Recorded for unknown addresses too (without a user), so both cost the same.
        audit::record(
            &services.db,
            now,
            user_id,
            Event::PasswordReset,
            "failure",
            requester,
            None,
        )
        .await?;
        tracing::info!(
            user_id = user_id.map(tracing::field::display),
            outcome = "invalid_code",
            "reset_password"
        );
        return Ok(false);
    };
    let txn = db::begin_write(&services.db).await?;
    // A match names its user: only an existing account's code can match.
    let Some(user) = users::Entity::find_by_id(matched.user_id())
        .one(&txn)
        .await?
    else {
        return Ok(false);
    };
    if !services.codes.consume(&txn, now, &matched).await? {
        tracing::info!(user_id = %user.id, outcome = "invalid_code", "reset_password");
        return Ok(false);
    }
    let user_id = user.id;
    let locale = user.locale.clone();
    let mut active = user.into_active_model();
    active.password_hash = Set(Some(password_hash));
    active.password_changed_at = Set(Some(now));
    if active.email_verified_at.as_ref().is_none() {
        active.email_verified_at = Set(Some(now));
    }
    active.updated_at = Set(now);
    active.update(&txn).await?;
    let sessions_ended =
        sessions::revoke_all_but(&txn, now, user_id, None, RevokeReason::PasswordChanged).await?;
    let codes_killed = services.codes.revoke_all(&txn, now, user_id).await?;
    enqueue_password_changed(&txn, now, email, &locale, requester, None).await?;
    audit::record(
        &txn,
        now,
        Some(user_id),
        Event::PasswordReset,
        "success",
        requester,
        None,
    )
    .await?;
    txn.commit().await?;
    // The email worker is woken after the answer (`api::middleware::equal_time`).
    tracing::info!(%user_id, sessions_ended, codes_killed, outcome = "reset", "reset_password");
    Ok(true)
}

/// What `change_password` can answer besides success.
pub enum ChangeRefused {
    /// The new password does not meet the policy (judged with the user's address in mind).
    Invalid(crate::domain::FieldProblem),
    WrongPassword,
    /// The session ended between authentication and now.
    NoUser,
}

/// Changes the password of the signed-in user after checking the current one. Other sessions
/// end; this one stays.
#[tracing::instrument(skip_all, fields(user_id = %auth.user_id, ip = requester.ip.as_deref()))]
pub async fn change_password(
    services: &Services,
    auth: &AuthUser,
    current: &PasswordAttempt,
    new_password: &str,
    requester: &Requester,
) -> Result<Result<(), ChangeRefused>, Error> {
    let Some(user) = users::Entity::find_by_id(auth.user_id)
        .one(&services.db)
        .await?
    else {
        return Ok(Err(ChangeRefused::NoUser));
    };
    let email = EmailAddress::parse(&user.email).map_err(|p| anyhow::anyhow!(p.message))?;
    let new_password = match NewPassword::parse(new_password, Some(&email), "new_password") {
        Ok(password) => password,
        Err(problem) => return Ok(Err(ChangeRefused::Invalid(problem))),
    };
    let current_ok = services
        .passwords
        .verify(current.expose(), user.password_hash.as_deref())
        .await?;
    if !current_ok {
        let (user_id, session_id) = (Some(auth.user_id), Some(auth.session_id));
        audit::record(
            &services.db,
            services.clock.now(),
            user_id,
            Event::PasswordChange,
            "wrong_password",
            requester,
            session_id,
        )
        .await?;
        tracing::info!(outcome = "wrong_password", "change_password");
        return Ok(Err(ChangeRefused::WrongPassword));
    }
    let password_hash = services.passwords.hash(new_password.expose()).await?;
    let now = services.clock.now();
    let locale = user.locale.clone();
    let device = sessions_device(services, auth).await?;
    let txn = db::begin_write(&services.db).await?;
    let mut active = user.into_active_model();
    active.password_hash = Set(Some(password_hash));
    active.password_changed_at = Set(Some(now));
    active.updated_at = Set(now);
    active.update(&txn).await?;
    let sessions_ended = sessions::revoke_all_but(
        &txn,
        now,
        auth.user_id,
        Some(auth.session_id),
        RevokeReason::PasswordChanged,
    )
    .await?;
    let codes_killed = services.codes.revoke_all(&txn, now, auth.user_id).await?;
    enqueue_password_changed(&txn, now, &email, &locale, requester, device).await?;
    let (user_id, session_id) = (Some(auth.user_id), Some(auth.session_id));
    audit::record(
        &txn,
        now,
        user_id,
        Event::PasswordChange,
        "success",
        requester,
        session_id,
    )
    .await?;
    txn.commit().await?;
    services.outbox.wake();
    tracing::info!(
        sessions_ended,
        codes_killed,
        outcome = "changed",
        "change_password"
    );
    Ok(Ok(()))
}

async fn sessions_device(services: &Services, auth: &AuthUser) -> Result<Option<String>, Error> {
    let session = entity::sessions::Entity::find_by_id(auth.session_id)
        .one(&services.db)
        .await?;
    Ok(session.and_then(|s| s.device_name.or(s.user_agent)))
}

async fn enqueue_password_changed<C: sea_orm::ConnectionTrait>(
    txn: &C,
    now: DateTime<Utc>,
    email: &EmailAddress,
    locale: &str,
    requester: &Requester,
    device: Option<String>,
) -> Result<(), sea_orm::DbErr> {
    let device = device.or_else(|| requester.user_agent.clone());
    outbox::enqueue(
        txn,
        Email {
            to: email.as_str().to_owned(),
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
