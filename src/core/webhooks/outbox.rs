//! The webhook outbox: one row per event, written in the caller's transaction and delivered
//! through the generic queue, in order of creation per user.

use chrono::{DateTime, Utc};
use entity::webhook_outbox::{self, Status};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
};
use uuid::Uuid;

use crate::core::queue::{self, Queue, QueueStatus};
use crate::core::webhooks::Event;

/// The webhook outbox as the generic queue sees it: one user's events go out one at a time,
/// oldest first.
pub const QUEUE: Queue = Queue {
    table: "webhook_outbox",
    done_status: "delivered",
    done_at: "delivered_at",
    scrub: &[],
    ordered_per: Some("user_id"),
};

/// Adds `event` to the outbox in the caller's transaction; returns its id (the `webhook-id`).
/// The id is a UUIDv7: time-ordered and, within this process, increasing, so events of one
/// user recorded at the same instant still go out in the order they were recorded.
pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
    event: &Event,
) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    webhook_outbox::ActiveModel {
        id: Set(id),
        user_id: Set(event.data.user_id),
        event_type: Set(event.kind.name().to_owned()),
        payload: Set(event.body(now)),
        status: Set(Status::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claim_token: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        delivered_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(id)
}

/// Claims up to `limit` due events (at most the oldest open one of each user) for
/// `lease_until` and returns them.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<webhook_outbox::Model>, DbErr> {
    let Some(token) = queue::claim(db, &QUEUE, now, lease_until, limit).await? else {
        return Ok(Vec::new());
    };
    webhook_outbox::Entity::find()
        .filter(webhook_outbox::Column::ClaimToken.eq(token))
        .all(db)
        .await
}

/// What `codeward webhooks status` prints.
pub async fn status<C: ConnectionTrait>(db: &C, now: DateTime<Utc>) -> Result<QueueStatus, DbErr> {
    queue::status(db, &QUEUE, now).await
}

/// Puts every dead event back in line, attempts reset; returns how many. They go out in order
/// of creation per user again, among the user's events still open.
pub async fn retry_dead<C: ConnectionTrait>(db: &C, now: DateTime<Utc>) -> Result<u64, DbErr> {
    queue::requeue_dead(db, &QUEUE, now, "1 = 1").await
}
