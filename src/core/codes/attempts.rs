//! The statements one attempt at a code runs: the two daily failure budgets it spends (its
//! network's and its account's ceiling) and the count at the live code, each one conditional
//! statement, so concurrent guesses can never exceed a limit.

use chrono::{DateTime, Utc};
use entity::{otp_budgets, otp_codes, otp_network_budgets};
use sea_orm::sea_query::{Expr, OnConflict, Order, Query, Value};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QueryTrait, Set,
};
use uuid::Uuid;

use crate::domain::{ClientNetwork, Purpose};
use crate::infra::sql_once::SqlOnce;

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
    let backend = db.get_database_backend();
    if backend == DatabaseBackend::MySql {
        // MySQL takes no LIMIT in an IN subquery: the same newest live code, found alone.
        let Some(found) = otp_codes::Entity::find()
            .filter(live(user_id, purpose))
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
            .filter(countable(now, user_id, purpose))
            .exec(db)
            .await?;
        return Ok((counted.rows_affected == 1).then_some(found));
    }
    static SQL: SqlOnce = SqlOnce::new();
    let purpose_name = purpose.name();
    let values = vec![
        1.into(),
        user_id.into(),
        purpose_name.into(),
        1u64.into(),
        user_id.into(),
        purpose_name.into(),
        now.into(),
    ];
    let statement = SQL.statement(backend, values, || {
        let newest = Query::select()
            .column(otp_codes::Column::Id)
            .from(otp_codes::Entity)
            .cond_where(live(user_id, purpose))
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
            .cond_where(countable(now, user_id, purpose))
            .returning(Query::returning().columns([
                otp_codes::Column::Id,
                otp_codes::Column::KeyId,
                otp_codes::Column::CodeHash,
            ]))
            .to_owned();
        backend.build(&update)
    });
    Counted::find_by_statement(statement).one(db).await
}

/// The user's codes of `purpose` that are neither used nor replaced.
fn live(user_id: Uuid, purpose: Purpose) -> Condition {
    Condition::all()
        .add(otp_codes::Column::UserId.eq(user_id))
        .add(otp_codes::Column::Purpose.eq(purpose.name()))
        .add(otp_codes::Column::ConsumedAt.is_null())
        .add(otp_codes::Column::RevokedAt.is_null())
}

/// Live codes that take another attempt at `now`: not expired, attempts left.
fn countable(now: DateTime<Utc>, user_id: Uuid, purpose: Purpose) -> Condition {
    Condition::all()
        .add(live(user_id, purpose))
        .add(otp_codes::Column::ExpiresAt.gt(now))
        .add(Expr::col(otp_codes::Column::Attempts).lt(Expr::col(otp_codes::Column::MaxAttempts)))
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

    /// The values of `network_row`, in its order.
    fn network_row_values(&self) -> Vec<Value> {
        vec![
            self.network_budget_of.into(),
            self.purpose.name().into(),
            self.network.as_str().into(),
        ]
    }

    /// The values of `ceiling_row`, in its order.
    fn ceiling_row_values(&self) -> Vec<Value> {
        vec![self.ceiling_of.into(), self.purpose.name().into()]
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
        let backend = db.get_database_backend();
        if backend == DatabaseBackend::MySql {
            otp_network_budgets::Entity::insert(row(0))
                .on_conflict(
                    OnConflict::columns(key)
                        .update_column(Column::LastAttemptAt)
                        .to_owned(),
                )
                .exec(db)
                .await?;
            static MYSQL_TAKE: SqlOnce = SqlOnce::new();
            let unit = Unit {
                sql: &MYSQL_TAKE,
                row: || self.network_row(),
                row_values: self.network_row_values(),
                window_start: Column::WindowStart,
                failures: Column::Failures,
            };
            return take_unit::<otp_network_budgets::Entity, _>(db, now, unit, budget).await;
        }
        static UPSERT: SqlOnce = SqlOnce::new();
        let cutoff = window_cutoff(now);
        let mut values = row_values(self.network_row_values(), now, 1);
        values.extend([
            cutoff.into(),
            1.into(),
            1.into(),
            cutoff.into(),
            now.into(),
            now.into(),
            cutoff.into(),
            budget.into(),
        ]);
        let statement = UPSERT.statement(backend, values, || {
            // The existing row's columns, named with the table (the proposed row is `excluded`).
            let existing = |column: Column| Expr::col((otp_network_budgets::Entity, column));
            let window_over = existing(Column::WindowStart).lte(cutoff);
            otp_network_budgets::Entity::insert(row(1))
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
                .build(backend)
        });
        Ok(db.execute(statement).await?.rows_affected() == 1)
    }

    /// Takes one unit of the ceiling (its row exists from sign-up or the first code).
    pub(super) async fn reserve_ceiling<C: ConnectionTrait>(
        &self,
        db: &C,
        now: DateTime<Utc>,
        ceiling: i32,
    ) -> Result<bool, DbErr> {
        static TAKE: SqlOnce = SqlOnce::new();
        let unit = Unit {
            sql: &TAKE,
            row: || self.ceiling_row(),
            row_values: self.ceiling_row_values(),
            window_start: otp_budgets::Column::WindowStart,
            failures: otp_budgets::Column::Failures,
        };
        take_unit::<otp_budgets::Entity, _>(db, now, unit, ceiling).await
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

/// A network budget's row as the upsert inserts it, in its column order: its key's values
/// (`network_row_values`), the window starting `now`, `failures` and the time of the guess.
fn row_values(key: Vec<Value>, now: DateTime<Utc>, failures: i32) -> Vec<Value> {
    let mut values = key;
    values.extend([now.into(), failures.into(), now.into()]);
    values
}

/// Where a 24-hour window that started at or before it is over.
fn window_cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::hours(24)
}

/// The row of one budget for `take_unit`: its SQL's cache, the condition that finds it (and
/// that condition's values, in its order) and its two columns.
struct Unit<'a, R, Col> {
    sql: &'a SqlOnce,
    row: R,
    row_values: Vec<Value>,
    window_start: Col,
    failures: Col,
}

/// Takes one unit of the 24-hour budget in the row of `E` that `unit` names, in one conditional
/// UPDATE, starting a new window when the old one is over. `false` when the budget is spent.
async fn take_unit<E: EntityTrait, C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    unit: Unit<'_, impl FnOnce() -> Condition, E::Column>,
    budget: i32,
) -> Result<bool, DbErr> {
    let Unit {
        sql,
        row,
        row_values,
        window_start,
        failures,
    } = unit;
    let backend = db.get_database_backend();
    let cutoff = window_cutoff(now);
    let mut values = vec![cutoff.into(), 1.into(), 1.into(), cutoff.into(), now.into()];
    values.extend(row_values);
    values.extend([cutoff.into(), budget.into()]);
    let statement = sql.statement(backend, values, || {
        let window_over = Expr::col(window_start).lte(cutoff);
        // MySQL assigns left to right, so `failures` must be set before `window_start` changes.
        E::update_many()
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
            .filter(row())
            .filter(
                Condition::any()
                    .add(window_over)
                    .add(Expr::col(failures).lt(budget)),
            )
            .build(backend)
    });
    Ok(db.execute(statement).await?.rows_affected() == 1)
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
