//! Removing an account and every row that names it, inside the caller's transaction.

use entity::{
    audit_events, email_outbox, otp_budgets, otp_codes, otp_network_budgets, refresh_tokens,
    sessions, users,
};
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

/// How many rows of each kind went with the account.
#[derive(Debug, Default)]
pub struct Removed {
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub codes: u64,
    pub budgets: u64,
    pub audit_events: u64,
    pub emails: u64,
}

/// Removes the user `user_id` whose address is `email`, with its sessions and their refresh
/// tokens, its codes, its failure budgets (all networks), its audit events and every email
/// still addressed to it, in the caller's transaction. `None` when no user row was removed
/// (another request deleted it first): the caller then rolls back. The user row goes last,
/// in one conditional DELETE, so that statement decides which of two deletions wins.
pub async fn remove_account<C: ConnectionTrait>(
    txn: &C,
    user_id: Uuid,
    email: &str,
) -> Result<Option<Removed>, DbErr> {
    let sessions_of_user = Query::select()
        .column(sessions::Column::Id)
        .from(sessions::Entity)
        .and_where(sessions::Column::UserId.eq(user_id))
        .to_owned();
    let refresh_tokens = refresh_tokens::Entity::delete_many()
        .filter(refresh_tokens::Column::SessionId.in_subquery(sessions_of_user.clone()))
        .exec(txn)
        .await?
        .rows_affected;
    let audit_events = audit_events::Entity::delete_many()
        .filter(
            Condition::any()
                .add(audit_events::Column::UserId.eq(user_id))
                .add(audit_events::Column::SessionId.in_subquery(sessions_of_user)),
        )
        .exec(txn)
        .await?
        .rows_affected;
    let sessions = sessions::Entity::delete_many()
        .filter(sessions::Column::UserId.eq(user_id))
        .exec(txn)
        .await?
        .rows_affected;
    let codes = otp_codes::Entity::delete_many()
        .filter(otp_codes::Column::UserId.eq(user_id))
        .exec(txn)
        .await?
        .rows_affected;
    let budgets = otp_budgets::Entity::delete_many()
        .filter(otp_budgets::Column::UserId.eq(user_id))
        .exec(txn)
        .await?
        .rows_affected
        + otp_network_budgets::Entity::delete_many()
            .filter(otp_network_budgets::Column::UserId.eq(user_id))
            .exec(txn)
            .await?
            .rows_affected;
    let emails = email_outbox::Entity::delete_many()
        .filter(email_outbox::Column::Recipient.eq(email))
        .exec(txn)
        .await?
        .rows_affected;
    let users = users::Entity::delete_many()
        .filter(users::Column::Id.eq(user_id))
        .exec(txn)
        .await?
        .rows_affected;
    Ok((users == 1).then_some(Removed {
        sessions,
        refresh_tokens,
        codes,
        budgets,
        audit_events,
        emails,
    }))
}
