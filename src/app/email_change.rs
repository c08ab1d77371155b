//! Tag `account`, email change: a code to the new address, then the switch, decided by the
//! unique index on `users.email`.

use entity::{otp_codes, users};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::app::code_request::{AttemptFor, attempt_code, take_code_send};
use crate::app::{Account, AuthUser, Error, Services, require_recent_authentication};
use crate::core::accounts::find_user;
use crate::core::audit::{self, Entry, Event, Outcome};
use crate::core::codes::CodeRecipient;
use crate::core::mail::{Email, Message, outbox};
use crate::core::webhooks::Event as Webhook;
use crate::domain::{EmailAddress, OtpCode, Purpose, Requester};
use crate::infra::db;

/// What `request_email_change` can answer.
pub enum RequestEmailChange {
    /// A code went to the new address, or the "taken" notice did: one answer for both.
    Sent,
    /// The account is gone (deleted between authentication and now).
    SignedOut,
}

/// What `verify_email_change` can answer.
pub enum VerifyEmailChange {
    /// The address is switched and verified.
    Changed(Account),
    /// Wrong, expired, used or no code: one answer for all.
    InvalidCode,
    /// Another account has the address now.
    EmailTaken,
    /// The account is gone (deleted between authentication and now).
    SignedOut,
}

/// Sends a `change_email` code to `new_email`, or, when another account has that address,
/// an "address taken" notice in place of the code with the same statements (a void code), so
/// the answer and its cost are the same. Needs a recent authentication.
#[tracing::instrument(skip_all, fields(user_id = %auth.user_id, ip = requester.ip.as_deref()))]
pub async fn request_email_change(
    services: &Services,
    auth: &AuthUser,
    new_email: &EmailAddress,
    locale: Option<&str>,
    requester: &Requester,
) -> Result<RequestEmailChange, Error> {
    require_recent_authentication(services, auth)?;
    let now = services.clock.now();
    let purpose = Purpose::ChangeEmail;
    let operation = "request_email_change";
    let txn = db::begin_write(&services.writer).await?;
    let Some(user) = users::Entity::find_by_id(auth.user_id).one(&txn).await? else {
        return Ok(RequestEmailChange::SignedOut);
    };
    take_code_send(services, &txn, now, new_email, purpose, operation).await?;
    let holder = find_user(&txn, new_email).await?;
    let locale = locale.unwrap_or(&user.locale);
    let recipient = CodeRecipient {
        user_id: Some(user.id),
        email: new_email,
        locale,
    };
    let taken = match holder {
        Some(holder) => {
            let notice = Email {
                to: new_email.as_str().to_owned(),
                message: Message::EmailTaken,
                locale: holder.locale,
                context: serde_json::json!({}),
                code: None,
                expires_at: now + chrono::Duration::hours(24),
            };
            services
                .codes
                .notice_instead(&txn, now, purpose, recipient, requester, notice)
                .await?;
            true
        }
        None => {
            services
                .codes
                .issue(&txn, now, purpose, recipient, requester)
                .await?;
            false
        }
    };
    txn.commit().await?;
    let outcome = if taken { "address_taken" } else { "code_sent" };
    tracing::info!(outcome, "{operation}");
    Ok(RequestEmailChange::Sent)
}

/// Checks the `change_email` code and switches the account to the address it was sent to
/// (verified), in one transaction that uses the code up, kills the user's other live codes
/// and emails the old address a notice naming the new one masked. Sessions stay. Whether the
/// address is still free is decided by the unique index on `users.email`: of two accounts
/// switching to one address at once, the second gets `EmailTaken`.
#[tracing::instrument(skip_all, fields(user_id = %auth.user_id, ip = requester.ip.as_deref()))]
pub async fn verify_email_change(
    services: &Services,
    auth: &AuthUser,
    code: Option<OtpCode>,
    requester: &Requester,
) -> Result<VerifyEmailChange, Error> {
    let operation = "verify_email_change";
    let Some(user) = users::Entity::find_by_id(auth.user_id)
        .one(&services.reads)
        .await?
    else {
        return Ok(VerifyEmailChange::SignedOut);
    };
    let Some(code) = code else {
        tracing::info!(outcome = "malformed_code", "{operation}");
        return Ok(VerifyEmailChange::InvalidCode);
    };
    // The guesser's address only matters for unknown accounts; this one is known.
    let Ok(current) = EmailAddress::parse(&user.email) else {
        return Err(sea_orm::DbErr::Custom(format!(
            "the stored address of user {} is not in normal form",
            user.id
        ))
        .into());
    };
    let attempt = AttemptFor {
        purpose: Purpose::ChangeEmail,
        event: Event::EmailChange,
        operation,
    };
    let now = services.clock.now();
    let matched = attempt_code(
        services,
        now,
        &current,
        Some(user.id),
        &code,
        attempt,
        requester,
    )
    .await?;
    let Some(matched) = matched else {
        return Ok(VerifyEmailChange::InvalidCode);
    };
    let now = services.clock.now();
    let txn = db::begin_write(&services.writer).await?;
    if !services.codes.consume(&txn, now, &matched).await? {
        tracing::info!(outcome = "invalid_code", "{operation}");
        return Ok(VerifyEmailChange::InvalidCode);
    }
    // The code's row holds the address it went to: the new one. Used codes of this purpose
    // are removed as the change commits, so the one used just now is the only one left, and
    // the pending address is not kept once it is the account's.
    let used = otp_codes::Entity::find()
        .filter(otp_codes::Column::UserId.eq(user.id))
        .filter(otp_codes::Column::Purpose.eq(Purpose::ChangeEmail.name()))
        .filter(otp_codes::Column::ConsumedAt.is_not_null())
        .order_by_desc(otp_codes::Column::CreatedAt)
        .one(&txn)
        .await?;
    let Some(used) = used else {
        return Err(sea_orm::DbErr::RecordNotFound(
            "the change_email code just used has no row".to_owned(),
        )
        .into());
    };
    otp_codes::Entity::delete_many()
        .filter(otp_codes::Column::UserId.eq(user.id))
        .filter(otp_codes::Column::Purpose.eq(Purpose::ChangeEmail.name()))
        .filter(otp_codes::Column::ConsumedAt.is_not_null())
        .exec(&txn)
        .await?;
    let new_email = used.email;
    let switched = users::Entity::update_many()
        .col_expr(users::Column::Email, Expr::value(new_email.clone()))
        .col_expr(users::Column::EmailVerifiedAt, Expr::value(Some(now)))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(user.id))
        .exec(&txn)
        .await;
    match switched {
        Ok(result) if result.rows_affected == 1 => {}
        Ok(_) => return Ok(VerifyEmailChange::SignedOut),
        Err(error) if db::is_unique_violation(&error) => {
            // The transaction is dropped: the code stays unused, nothing changed.
            tracing::info!(outcome = "email_taken", "{operation}");
            return Ok(VerifyEmailChange::EmailTaken);
        }
        Err(error) => return Err(error.into()),
    }
    let codes_killed = services.codes.revoke_all(&txn, now, user.id).await?;
    let notice = Email {
        to: user.email.clone(),
        message: Message::EmailChanged,
        locale: user.locale.clone(),
        context: serde_json::json!({
            "new_email_masked": masked(&new_email),
            "changed_at": now.format("%Y-%m-%d %H:%M UTC").to_string(),
        }),
        code: None,
        expires_at: now + chrono::Duration::hours(24),
    };
    outbox::enqueue(&txn, notice, now).await?;
    let changed = Webhook::user_email_changed(user.id, &new_email, &user.email);
    services.webhooks.record(&txn, now, changed).await?;
    let entry = Entry {
        event: Event::EmailChange,
        outcome: Outcome::Success,
        user_id: Some(user.id),
        session_id: Some(auth.session_id),
        requester,
    };
    audit::record(&txn, now, entry).await?;
    txn.commit().await?;
    services.webhooks.signal().wake();
    tracing::info!(codes_killed, outcome = "changed", "{operation}");
    let account = Account {
        email: new_email,
        email_verified: true,
        ..Account::from(user)
    };
    Ok(VerifyEmailChange::Changed(account))
}

/// The address as a notice may show it to the old mailbox: the first character of the local
/// part, then `•••`, then the domain (`n•••@example.com`).
fn masked(address: &str) -> String {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    let first: String = local.chars().take(1).collect();
    format!("{first}•••@{domain}")
}

#[cfg(test)]
mod tests {
    use super::masked;

    #[test]
    fn a_masked_address_keeps_the_first_character_and_the_domain() {
        assert_eq!(masked("new.person@example.com"), "n•••@example.com");
        assert_eq!(masked("x@b.example"), "x•••@b.example");
    }
}
