//! What the code use-cases share: a code request for an address (`resend_signup_code`,
//! `forgot_password`) and a code attempt that ends the use-case when it fails (`verify_signup`,
//! `reset_password`).

use chrono::{DateTime, Utc};
use entity::users;
use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait};
use uuid::Uuid;

use crate::app::{Error, Services};
use crate::core::accounts::find_user;
use crate::core::audit::{self, Entry, Event, Outcome};
use crate::core::codes::{CodeRecipient, Guesser, Matched};
use crate::domain::{EmailAddress, FieldProblem, OtpCode, PendingPassword, Purpose, Requester};
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
    // Its first statement writes (a send counter's upsert).
    let txn = services.transactions.begin_writing().await?;
    take_code_send(services, &txn, now, email, purpose, operation).await?;
    // A disabled account is an unknown address: its code is void like nobody's.
    let user = find_user(&txn, email)
        .await?
        .filter(|user| user.disabled_at.is_none() && eligible(user));
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

/// Takes one code send for `email` from its counters, inside the caller's transaction (see
/// `AddressLimits::take_code_send`); a refusal is logged as `operation`'s.
pub(super) async fn take_code_send(
    services: &Services,
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    email: &EmailAddress,
    purpose: Purpose,
    operation: &'static str,
) -> Result<(), Error> {
    services
        .address_limits
        .take_code_send(txn, now, email, purpose)
        .await
        .inspect_err(|error| {
            if let Error::Limited(limited) = error {
                tracing::info!(
                    outcome = "rate_limited",
                    policy = limited.policy,
                    "{operation}"
                );
            }
        })
}

/// The use-case a code attempt is for: the code's purpose, the audit event a failure records,
/// and the operation's name in the log.
pub(super) struct AttemptFor {
    pub purpose: Purpose,
    pub event: Event,
    pub operation: &'static str,
}

/// One attempt with `code` at the user's live code (a decoy's when there is no user) for
/// `email`. `Some` when it matched. A failure is recorded for unknown addresses too (without
/// a user), so both cost the same. The attempt's statements and the failure's audit row are
/// one short transaction, committed before the answer: one commit per guess instead of one
/// per statement, and a counted attempt is never lost.
pub(super) async fn attempt_code(
    services: &Services,
    now: DateTime<Utc>,
    email: &EmailAddress,
    user_id: Option<Uuid>,
    code: &OtpCode,
    attempt: AttemptFor,
    requester: &Requester,
) -> Result<Option<Matched>, Error> {
    let AttemptFor {
        purpose,
        event,
        operation,
    } = attempt;
    let codes = &services.codes;
    let guesser = Guesser {
        user_id,
        email,
        network: requester.network,
    };
    let txn = services.transactions.begin_writing().await?;
    let matched = codes.attempt(&txn, now, purpose, code, guesser).await?;
    if matched.is_none() {
        let entry = Entry {
            event,
            outcome: Outcome::Failure,
            user_id,
            session_id: None,
            requester,
        };
        audit::record(&txn, now, entry).await?;
    }
    txn.commit().await?;
    if matched.is_none() {
        tracing::info!(
            user_id = user_id.map(tracing::field::display),
            outcome = "invalid_code",
            "{operation}"
        );
    }
    Ok(matched)
}

/// What a matched code and a new password come to.
pub(super) enum Redeemed {
    /// The password passed and is hashed, and the code is used up inside `txn`, where the
    /// caller makes its change and commits.
    Ready {
        txn: DatabaseTransaction,
        user: users::Model,
        password_hash: String,
        now: DateTime<Utc>,
    },
    /// The password is refused; the attempt gave its units back, so the code stays usable
    /// with a better one.
    PasswordRefused(FieldProblem),
    /// Another request used the code first, or it expired meanwhile.
    InvalidCode,
}

/// Judges the new password of a matched code, hashes it, then uses the code up in a new
/// transaction. Only a right code pays for the strength estimate and argon2: every failure
/// before costs the same (neither), so the time tells nothing about what went wrong, and a
/// flood of wrong codes costs database statements rather than a place in the hashing queue
/// each (with the hash first, such a flood made real sign-ins answer 503). No transaction is
/// open during argon2.
pub(super) async fn redeem_with_password(
    services: &Services,
    matched: &Matched,
    password: &PendingPassword,
    email: &EmailAddress,
    field: &'static str,
    operation: &'static str,
) -> Result<Redeemed, Error> {
    let user_id = matched.user_id();
    let password = match services
        .passwords
        .judge(password, Some(email), field)
        .await?
    {
        Ok(password) => password,
        Err(problem) => {
            tracing::info!(%user_id, outcome = "password_refused", "{operation}");
            return Ok(Redeemed::PasswordRefused(problem));
        }
    };
    let password_hash = services.passwords.hash(password.expose()).await?;
    let now = services.clock.now();
    let txn = db::begin_write(&services.writer).await?;
    // A match names its user: only an existing account's code can match.
    // Disabling revokes the account's codes; this closes a race with it.
    let Some(user) = users::Entity::find_by_id(user_id)
        .one(&txn)
        .await?
        .filter(|user| user.disabled_at.is_none())
    else {
        return Ok(Redeemed::InvalidCode);
    };
    if !services.codes.consume(&txn, now, matched).await? {
        tracing::info!(%user_id, outcome = "invalid_code", "{operation}");
        return Ok(Redeemed::InvalidCode);
    }
    Ok(Redeemed::Ready {
        txn,
        user,
        password_hash,
        now,
    })
}
