//! The statements one attempt at a code runs: the two daily failure budgets it spends (its
//! network's and its account's ceiling) and the count at the live code, each one conditional
//! statement, so concurrent guesses can never exceed a limit.

use chrono::{DateTime, Utc};
use entity::{otp_budgets, otp_codes, otp_network_budgets};
use sea_orm::sea_query::{Expr, OnConflict, Order, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use crate::domain::{ClientNetwork, Purpose};

/// The live code an attempt was counted at: what checking the digits needs.
#[derive(Debug, FromQueryResult)]
pub(super) struct Counted {
    pub id: Uuid,
    pub key_id: String,
    pub code_hash: String,
}

/// Counts one attempt at the user's newest live code for `purpose`, if it has not expired or
/// run out of attempts, and returns it. PostgreSQL and SQLite find and count it in one
/// conditional `UPDATE … RETURNING`; MySQL/MariaDB, which cannot return from an UPDATE, find it
/// first and then count it with the same conditions, so a code used, replaced or spent
/// meanwhile is never counted there either.
pub(super) async fn count_attempt<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    user_id: Uuid,
    purpose: Purpose,
) -> Result<Option<Counted>, DbErr> {
    let live = Condition::all()
        .add(otp_codes::Column::UserId.eq(user_id))
        .add(otp_codes::Column::Purpose.eq(purpose.name()))
        .add(otp_codes::Column::ConsumedAt.is_null())
        .add(otp_codes::Column::RevokedAt.is_null());
    let countable = Condition::all()
        .add(live.clone())
        .add(otp_codes::Column::ExpiresAt.gt(now))
        .add(Expr::col(otp_codes::Column::Attempts).lt(Expr::col(otp_codes::Column::MaxAttempts)));
    let backend = db.get_database_backend();
    if backend == DatabaseBackend::MySql {
        // MySQL takes no LIMIT in an IN subquery: the same newest live code, found alone.
        let Some(found) = otp_codes::Entity::find()
            .filter(live)
            .order_by_desc(otp_codes::Column::CreatedAt)
            .into_model::<Counted>()
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        let counted = otp_codes::Entity::update_many()
            .col_expr(
                otp_codes::Column::Attempts,
                Expr::col(otp_codes::Column::Attempts).add(1),
            )
            .filter(otp_codes::Column::Id.eq(found.id))
            .filter(countable)
            .exec(db)
            .await?;
        return Ok((counted.rows_affected == 1).then_some(found));
    }
    let newest = Query::select()
        .column(otp_codes::Column::Id)
        .from(otp_codes::Entity)
        .cond_where(live)
        .order_by(otp_codes::Column::CreatedAt, Order::Desc)
        .limit(1)
        .to_owned();
    let update = Query::update()
        .table(otp_codes::Entity)
        .value(
            otp_codes::Column::Attempts,
            Expr::col(otp_codes::Column::Attempts).add(1),
        )
        .and_where(otp_codes::Column::Id.in_subquery(newest))
        .cond_where(countable)
        .returning(Query::returning().columns([
            otp_codes::Column::Id,
            otp_codes::Column::KeyId,
            otp_codes::Column::CodeHash,
        ]))
        .to_owned();
    Counted::find_by_statement(backend.build(&update))
        .one(db)
        .await
}

/// The name a client network's budget is kept under. Requests without a known IP (not over
/// TCP) share one budget.
pub(super) fn network_key(network: Option<ClientNetwork>) -> String {
    network.map_or_else(|| "unknown".to_owned(), |network| network.to_string())
}

/// The two daily failure budgets one attempt spends: its user, purpose and network's, and its
/// user and purpose's ceiling over all networks. For an account both are the account's; for
/// an unknown address the ceiling is a decoy's and the network budget the address's own.
pub(super) struct Budgets {
    /// Whose ceiling (`otp_budgets`).
    ceiling_of: Uuid,
    /// Whose network budget (`otp_network_budgets`).
    network_budget_of: Uuid,
    purpose: Purpose,
    pub network: String,
}

impl Budgets {
    pub(super) fn new(
        ceiling_of: Uuid,
        network_budget_of: Uuid,
        purpose: Purpose,
        network: String,
    ) -> Self {
        Self {
            ceiling_of,
            network_budget_of,
            purpose,
            network,
        }
    }

    fn network_row(&self) -> Condition {
        Condition::all()
            .add(otp_network_budgets::Column::UserId.eq(self.network_budget_of))
            .add(otp_network_budgets::Column::Purpose.eq(self.purpose.name()))
            .add(otp_network_budgets::Column::Network.eq(self.network.as_str()))
    }

    fn ceiling_row(&self) -> Condition {
        Condition::all()
            .add(otp_budgets::Column::UserId.eq(self.ceiling_of))
            .add(otp_budgets::Column::Purpose.eq(self.purpose.name()))
    }

    /// Takes one unit of the network's budget; the row is made by the first guess from the
    /// network (at an account or an unknown address alike). PostgreSQL and SQLite do both in
    /// one conditional upsert: a first guess inserts the row with the unit taken, a later one
    /// takes it only if the budget allows (or starts a new window), so either way it is one
    /// statement and one row write. MySQL/MariaDB, whose upsert takes no condition, first
    /// upsert the row (writing the time of the guess) and then take the unit with `take_unit`.
    pub(super) async fn reserve_network<C: ConnectionTrait>(
        &self,
        db: &C,
        now: DateTime<Utc>,
        budget: i32,
    ) -> Result<bool, DbErr> {
        use otp_network_budgets::Column;
        let key = [Column::UserId, Column::Purpose, Column::Network];
        let row = |failures: i32| otp_network_budgets::ActiveModel {
            user_id: Set(self.network_budget_of),
            purpose: Set(self.purpose.name().to_owned()),
            network: Set(self.network.clone()),
            window_start: Set(now),
            failures: Set(failures),
            last_attempt_at: Set(now),
        };
        if db.get_database_backend() == DatabaseBackend::MySql {
            otp_network_budgets::Entity::insert(row(0))
                .on_conflict(
                    OnConflict::columns(key)
                        .update_column(Column::LastAttemptAt)
                        .to_owned(),
                )
                .exec(db)
                .await?;
            return take_unit::<otp_network_budgets::Entity, _>(
                db,
                now,
                self.network_row(),
                Column::WindowStart,
                Column::Failures,
                budget,
            )
            .await;
        }
        // The existing row's columns, named with the table (the proposed row is `excluded`).
        let existing = |column: Column| Expr::col((otp_network_budgets::Entity, column));
        let window_over = existing(Column::WindowStart).lte(now - chrono::Duration::hours(24));
        let taken = otp_network_budgets::Entity::insert(row(1))
            .on_conflict(
                OnConflict::columns(key)
                    .value(
                        Column::Failures,
                        Expr::case(window_over.clone(), 1)
                            .finally(existing(Column::Failures).add(1)),
                    )
                    .value(
                        Column::WindowStart,
                        Expr::case(window_over.clone(), Expr::value(now))
                            .finally(existing(Column::WindowStart)),
                    )
                    .value(Column::LastAttemptAt, Expr::value(now))
                    .action_and_where(window_over.or(existing(Column::Failures).lt(budget)))
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
        Ok(taken == 1)
    }

    /// Takes one unit of the ceiling (its row exists from sign-up or the first code).
    pub(super) async fn reserve_ceiling<C: ConnectionTrait>(
        &self,
        db: &C,
        now: DateTime<Utc>,
        ceiling: i32,
    ) -> Result<bool, DbErr> {
        take_unit::<otp_budgets::Entity, _>(
            db,
            now,
            self.ceiling_row(),
            otp_budgets::Column::WindowStart,
            otp_budgets::Column::Failures,
            ceiling,
        )
        .await
    }

    pub(super) async fn refund_network<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        give_back_unit::<otp_network_budgets::Entity, _>(
            db,
            self.network_row(),
            otp_network_budgets::Column::Failures,
        )
        .await
    }

    /// Gives back both units.
    pub(super) async fn refund<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        self.refund_network(db).await?;
        give_back_unit::<otp_budgets::Entity, _>(
            db,
            self.ceiling_row(),
            otp_budgets::Column::Failures,
        )
        .await
    }
}

/// Takes one unit of the 24-hour budget in the row `row` of `E`, in one conditional UPDATE,
/// starting a new window when the old one is over. `false` when the budget is spent.
async fn take_unit<E: EntityTrait, C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    row: Condition,
    window_start: E::Column,
    failures: E::Column,
    budget: i32,
) -> Result<bool, DbErr> {
    let window_over = Expr::col(window_start).lte(now - chrono::Duration::hours(24));
    // MySQL assigns left to right, so `failures` must be set before `window_start` changes.
    let result = E::update_many()
        .col_expr(
            failures,
            Expr::case(window_over.clone(), 1)
                .finally(Expr::col(failures).add(1))
                .into(),
        )
        .col_expr(
            window_start,
            Expr::case(window_over.clone(), Expr::value(now))
                .finally(Expr::col(window_start))
                .into(),
        )
        .filter(row)
        .filter(
            Condition::any()
                .add(window_over)
                .add(Expr::col(failures).lt(budget)),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

async fn give_back_unit<E: EntityTrait, C: ConnectionTrait>(
    db: &C,
    row: Condition,
    failures: E::Column,
) -> Result<(), DbErr> {
    E::update_many()
        .col_expr(failures, Expr::col(failures).sub(1))
        .filter(row)
        .filter(Expr::col(failures).gt(0))
        .exec(db)
        .await?;
    Ok(())
}
