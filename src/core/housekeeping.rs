//! Housekeeping: removes rows nobody needs any more, in small batches so no statement holds
//! locks for long. Runs inside `serve` on a timer and as `codeward purge` (for cron).

use chrono::{DateTime, Utc};
use entity::{
    audit_events, email_outbox, otp_budgets, otp_codes, otp_network_budgets, rate_counters,
    refresh_tokens, sessions, users, webhook_outbox,
};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
};

use crate::config::Config;
use crate::core::codes::decoy_user_ids;

/// How long finished rows are kept before they go (for audits and support questions).
#[derive(Clone, Debug)]
pub struct Retention {
    /// Used, replaced or expired codes; sent or dead emails; ended sessions.
    pub finished: chrono::Duration,
    /// Rotated refresh tokens are kept as long as a refresh token could live, so a replay
    /// is still recognised.
    pub rotated_refresh_tokens: chrono::Duration,
    /// Audit events.
    pub audit: chrono::Duration,
    /// Accounts never verified, counted from their last sign-up and their newest code.
    pub unverified: chrono::Duration,
    pub batch_size: u64,
}

impl Retention {
    pub fn from_config(config: &Config) -> Self {
        Self {
            finished: config.retention(),
            rotated_refresh_tokens: config.refresh_token_idle(),
            audit: config.audit_retention(),
            unverified: config.unverified_retention(),
            batch_size: config.purge_batch_size,
        }
    }
}

/// Rows removed by one purge, per table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Purged {
    pub users: u64,
    pub otp_codes: u64,
    pub otp_budgets: u64,
    pub otp_network_budgets: u64,
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub email_outbox: u64,
    pub webhook_outbox: u64,
    pub rate_counters: u64,
    pub audit_events: u64,
}

impl Purged {
    /// Rows removed per table, every table once: what `codeward purge` prints and `total` sums.
    pub fn by_table(&self) -> [(&'static str, u64); 10] {
        [
            ("users", self.users),
            ("otp_codes", self.otp_codes),
            ("otp_budgets", self.otp_budgets),
            ("otp_network_budgets", self.otp_network_budgets),
            ("sessions", self.sessions),
            ("refresh_tokens", self.refresh_tokens),
            ("email_outbox", self.email_outbox),
            ("webhook_outbox", self.webhook_outbox),
            ("rate_counters", self.rate_counters),
            ("audit_events", self.audit_events),
        ]
    }

    pub fn total(&self) -> u64 {
        self.by_table().iter().map(|(_, rows)| rows).sum()
    }
}

/// Deletes, batch by batch, every row that has served its purpose.
pub async fn purge<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    retention: &Retention,
) -> Result<Purged, DbErr> {
    let before = now - retention.finished;
    let batch = retention.batch_size;

    // Accounts never verified, with their codes and budgets, first: their expired codes then
    // need no second pass.
    let unverified = purge_unverified(db, now, now - retention.unverified, batch).await?;

    // The sealed copy of a code that expired is erased at once (used and replaced ones lost
    // theirs then): it can never be sent again, and is no longer needed.
    otp_codes::Entity::update_many()
        .col_expr(otp_codes::Column::CodeSealed, Expr::value(None::<String>))
        .filter(otp_codes::Column::CodeSealed.is_not_null())
        .filter(otp_codes::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?;

    // Codes: expired, used or replaced, and past retention; void ones (written for an address
    // no account has, without the address) at once. The decoy's rows stay.
    let codes = Condition::all()
        .add(otp_codes::Column::UserId.is_not_in(decoy_user_ids()))
        .add(
            Condition::any()
                .add(otp_codes::Column::Email.eq(""))
                .add(otp_codes::Column::ExpiresAt.lt(before))
                .add(otp_codes::Column::ConsumedAt.lt(before))
                .add(otp_codes::Column::RevokedAt.lt(before)),
        );
    let otp_codes = delete_in_batches::<_, otp_codes::Entity, uuid::Uuid>(
        db,
        batch,
        otp_codes::Column::Id,
        codes,
    )
    .await?;

    // Sessions that ended (revoked, or past either limit) before the retention: their refresh
    // tokens go with them (foreign key, on delete cascade).
    let ended = Condition::any()
        .add(sessions::Column::RevokedAt.lt(before))
        .add(sessions::Column::ExpiresAt.lt(before))
        .add(sessions::Column::RefreshExpiresAt.lt(before));
    let sessions = delete_in_batches::<_, sessions::Entity, uuid::Uuid>(
        db,
        batch,
        sessions::Column::Id,
        ended,
    )
    .await?;

    // Rotated refresh tokens of live sessions, once no refresh token that old could still be
    // valid: a replay of one would be refused anyway.
    let rotated_before = now - retention.rotated_refresh_tokens;
    let refresh_tokens = delete_in_batches::<_, refresh_tokens::Entity, String>(
        db,
        batch,
        refresh_tokens::Column::TokenHash,
        Condition::all().add(refresh_tokens::Column::UsedAt.lt(rotated_before)),
    )
    .await?;

    // Delivered or dead emails (their code was scrubbed when they got there), and void rows
    // (never meant to be sent; nothing in them is worth keeping).
    let done = Condition::any()
        .add(
            Condition::all()
                .add(
                    email_outbox::Column::Status
                        .is_in([email_outbox::Status::Sent, email_outbox::Status::Dead]),
                )
                .add(email_outbox::Column::CreatedAt.lt(before)),
        )
        .add(email_outbox::Column::Status.eq(email_outbox::Status::Void));
    let email_outbox = delete_in_batches::<_, email_outbox::Entity, uuid::Uuid>(
        db,
        batch,
        email_outbox::Column::Id,
        done,
    )
    .await?;

    // Delivered or dead webhook events (`codeward webhooks retry-dead` can requeue a dead one
    // until then).
    let delivered = Condition::all()
        .add(webhook_outbox::Column::Status.is_in([
            webhook_outbox::Status::Delivered,
            webhook_outbox::Status::Dead,
        ]))
        .add(webhook_outbox::Column::CreatedAt.lt(before));
    let webhook_outbox = delete_in_batches::<_, webhook_outbox::Entity, uuid::Uuid>(
        db,
        batch,
        webhook_outbox::Column::Id,
        delivered,
    )
    .await?;

    // Failure budgets of ids no account has (a sign-up for an existing address writes a set,
    // so that it costs what a new account's does), once their window is over. Accounts'
    // budgets and the decoys' stay.
    let no_account = Condition::all()
        .add(otp_budgets::Column::UserId.is_not_in(decoy_user_ids()))
        .add(
            Expr::col(otp_budgets::Column::UserId).not_in_subquery(
                Query::select()
                    .column(users::Column::Id)
                    .from(users::Entity)
                    .to_owned(),
            ),
        )
        .add(otp_budgets::Column::WindowStart.lt(now - chrono::Duration::days(1)));
    let otp_budgets = delete_in_batches::<_, otp_budgets::Entity, uuid::Uuid>(
        db,
        batch,
        otp_budgets::Column::UserId,
        no_account,
    )
    .await?;

    // Network budgets (of accounts and unknown addresses alike) whose window is over: a missing row is
    // made afresh by the next guess from its network, which is what an over window means.
    let otp_network_budgets =
        purge_network_budgets(db, batch, now - chrono::Duration::days(1)).await?;

    // Counters whose window is long over and that block nothing: a missing row is recreated
    // empty, which is what an over window means anyway.
    let idle = Condition::all()
        .add(rate_counters::Column::WindowStart.lt(now - chrono::Duration::days(1)))
        .add(
            Condition::any()
                .add(rate_counters::Column::BlockedUntil.is_null())
                .add(rate_counters::Column::BlockedUntil.lt(now)),
        );
    let rate_counters = delete_in_batches::<_, rate_counters::Entity, String>(
        db,
        batch,
        rate_counters::Column::Key,
        idle,
    )
    .await?;

    let audit_events = delete_in_batches::<_, audit_events::Entity, uuid::Uuid>(
        db,
        batch,
        audit_events::Column::Id,
        Condition::all().add(audit_events::Column::CreatedAt.lt(now - retention.audit)),
    )
    .await?;

    Ok(Purged {
        users: unverified.users,
        otp_codes: otp_codes + unverified.otp_codes,
        otp_budgets: otp_budgets + unverified.otp_budgets,
        otp_network_budgets,
        audit_events,
        sessions,
        refresh_tokens,
        email_outbox,
        webhook_outbox,
        rate_counters,
    })
}

/// Deletes, `batch` at a time, the accounts whose address was never verified and that have
/// been left alone since `before`: their last sign-up (`updated_at`, which a new sign-up for
/// the address rewrites) is older, and none of their codes was issued since or still lives (a
/// resend keeps the account too). Their codes and failure budgets go with them. Nobody can
/// sign in to such an account, and a new sign-up for the address starts a new one.
///
/// The delete repeats the condition, so an account that a sign-up refreshed between the read
/// and the delete stays; its codes and budgets are deleted only once no account has their
/// user id.
async fn purge_unverified<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    before: DateTime<Utc>,
    batch: u64,
) -> Result<Purged, DbErr> {
    let recent_code = Query::select()
        .expr(Expr::val(1))
        .from(otp_codes::Entity)
        .and_where(
            Expr::col((otp_codes::Entity, otp_codes::Column::UserId))
                .equals((users::Entity, users::Column::Id)),
        )
        .cond_where(
            Condition::any()
                .add(Expr::col((otp_codes::Entity, otp_codes::Column::CreatedAt)).gte(before))
                .add(Expr::col((otp_codes::Entity, otp_codes::Column::ExpiresAt)).gt(now)),
        )
        .to_owned();
    let abandoned = Condition::all()
        .add(users::Column::EmailVerifiedAt.is_null())
        .add(users::Column::UpdatedAt.lt(before))
        .add(Expr::exists(recent_code).not());
    let no_account = || {
        Query::select()
            .column(users::Column::Id)
            .from(users::Entity)
            .to_owned()
    };
    let mut purged = Purged::default();
    loop {
        let ids: Vec<uuid::Uuid> = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .filter(abandoned.clone())
            .limit(batch)
            .into_tuple()
            .all(db)
            .await?;
        let read = ids.len() as u64;
        if read == 0 {
            return Ok(purged);
        }
        purged.users += users::Entity::delete_many()
            .filter(users::Column::Id.is_in(ids.clone()))
            .filter(abandoned.clone())
            .exec(db)
            .await?
            .rows_affected;
        purged.otp_codes += otp_codes::Entity::delete_many()
            .filter(otp_codes::Column::UserId.is_in(ids.clone()))
            .filter(Expr::col(otp_codes::Column::UserId).not_in_subquery(no_account()))
            .exec(db)
            .await?
            .rows_affected;
        purged.otp_budgets += otp_budgets::Entity::delete_many()
            .filter(otp_budgets::Column::UserId.is_in(ids))
            .filter(Expr::col(otp_budgets::Column::UserId).not_in_subquery(no_account()))
            .exec(db)
            .await?
            .rows_affected;
        if read < batch {
            return Ok(purged);
        }
    }
}

/// Deletes the network budgets whose window started before `before`, `batch` at a time. Their
/// key has three columns, so each batch is deleted by its keys as row values.
async fn purge_network_budgets<C: ConnectionTrait>(
    db: &C,
    batch: u64,
    before: DateTime<Utc>,
) -> Result<u64, DbErr> {
    use otp_network_budgets::Column;
    let over = Condition::all().add(Column::WindowStart.lt(before));
    let mut total = 0;
    loop {
        let keys: Vec<(uuid::Uuid, String, String)> = otp_network_budgets::Entity::find()
            .select_only()
            .columns([Column::UserId, Column::Purpose, Column::Network])
            .filter(over.clone())
            .limit(batch)
            .into_tuple()
            .all(db)
            .await?;
        if keys.is_empty() {
            return Ok(total);
        }
        let found = keys.len() as u64;
        let key = Expr::tuple([
            Expr::col(Column::UserId).into(),
            Expr::col(Column::Purpose).into(),
            Expr::col(Column::Network).into(),
        ]);
        // The window is checked again: a guess may have started a new one meanwhile.
        let deleted = otp_network_budgets::Entity::delete_many()
            .filter(key.in_tuples(keys))
            .filter(over.clone())
            .exec(db)
            .await?
            .rows_affected;
        total += deleted;
        if found < batch {
            return Ok(total);
        }
    }
}

/// Deletes the rows of `E` matching `filter`, `batch` at a time: the keys of a batch are read,
/// then deleted by key, which every backend supports (MySQL refuses `LIMIT` in an `IN`
/// subquery, SQLite `LIMIT` in a `DELETE`). Returns how many went.
async fn delete_in_batches<C, E, K>(
    db: &C,
    batch: u64,
    key: E::Column,
    filter: Condition,
) -> Result<u64, DbErr>
where
    C: ConnectionTrait,
    E: EntityTrait,
    K: sea_orm::TryGetableMany + Into<sea_orm::Value> + Send + Sync,
{
    let mut total = 0;
    loop {
        let keys: Vec<K> = E::find()
            .select_only()
            .column(key)
            .filter(filter.clone())
            .limit(batch)
            .into_tuple()
            .all(db)
            .await?;
        let deleted = E::delete_many()
            .filter(key.is_in(keys))
            .exec(db)
            .await?
            .rows_affected;
        total += deleted;
        if deleted < batch {
            return Ok(total);
        }
    }
}
