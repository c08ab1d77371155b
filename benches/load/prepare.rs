//! Test data by direct inserts, in the shapes codeward itself writes: unverified accounts with
//! a live sign-up code (S1), and verified accounts with a password and a signed-in session
//! (S2, S3, S4). Access tokens are signed by codeward's own token service with the signing key
//! the server made at its first start, so they are exactly the tokens the server would issue.

use chrono::{DateTime, Utc};
use entity::{otp_budgets, otp_codes, sessions, users};
use sea_orm::{DatabaseConnection, EntityTrait, Set, TransactionTrait};
use uuid::Uuid;

use codeward::core::tokens::{Claims, Tokens};

/// The password of every prepared account (never printed).
pub const PASSWORD: &str = "plum orbit cactus lantern 47";
/// Pre-inserted codes survive this many wrong guesses, so every guess of a run takes the path
/// of a counted wrong attempt (the default of 5 would turn most into dead-code refusals).
pub const CODE_MAX_ATTEMPTS: i32 = 1000;

pub struct Account {
    pub id: Uuid,
    pub email: String,
}

pub struct Prepared {
    /// Unverified, each with a live `verify_email` code and an empty failure budget.
    pub pending: Vec<Account>,
    /// Verified, with `PASSWORD` and one live session each.
    pub members: Vec<Account>,
    /// `Bearer <access token>` of each member's session.
    pub authorizations: Vec<String>,
    /// Each member's session id and user id (what S4's statements look up).
    pub sessions: Vec<(Uuid, Uuid)>,
    /// Each member's access token, for checking signatures alone.
    pub access_tokens: Vec<String>,
}

const CHUNK: usize = 500;

pub async fn prepare(
    db: &DatabaseConnection,
    accounts: usize,
    key_id: &str,
    password_hash: &str,
    tokens: &Tokens,
) -> anyhow::Result<Prepared> {
    let now = Utc::now();
    let pending: Vec<Account> = (0..accounts)
        .map(|i| Account {
            id: Uuid::new_v4(),
            email: format!("p{i}@bench.test"),
        })
        .collect();
    let members: Vec<Account> = (0..accounts)
        .map(|i| Account {
            id: Uuid::new_v4(),
            email: format!("m{i}@bench.test"),
        })
        .collect();
    let session_ids: Vec<Uuid> = (0..accounts).map(|_| Uuid::new_v4()).collect();
    let mut access_tokens = Vec::with_capacity(accounts);
    let progress = Progress::new(accounts, "access tokens signed");
    for (account, &session_id) in members.iter().zip(&session_ids) {
        progress.tick(access_tokens.len());
        let claims = Claims {
            user_id: account.id,
            session_id,
            issued_at: now,
            // Live for the whole run, however long it is configured to be.
            expires_at: now + chrono::Duration::hours(6),
            auth_time: now,
            amr: "pwd",
            email: account.email.clone(),
            email_verified: true,
        };
        access_tokens.push(tokens.issue(claims).await?.expose().to_owned());
    }

    // One transaction per batch: a million accounts never sit in one transaction's log.
    let progress = Progress::new(accounts, "unverified accounts inserted");
    for (done, chunk) in pending.chunks(CHUNK).enumerate() {
        progress.tick(done * CHUNK);
        let txn = db.begin().await?;
        users::Entity::insert_many(chunk.iter().map(|a| user(a, now, None)))
            .exec(&txn)
            .await?;
        otp_codes::Entity::insert_many(chunk.iter().map(|a| live_code(a, now, key_id)))
            .exec(&txn)
            .await?;
        otp_budgets::Entity::insert_many(chunk.iter().map(|a| otp_budgets::ActiveModel {
            user_id: Set(a.id),
            purpose: Set("verify_email".into()),
            window_start: Set(now),
            failures: Set(0),
        }))
        .exec(&txn)
        .await?;
        txn.commit().await?;
    }
    let progress = Progress::new(accounts, "verified accounts inserted");
    for (done, (chunk, ids)) in members
        .chunks(CHUNK)
        .zip(session_ids.chunks(CHUNK))
        .enumerate()
    {
        progress.tick(done * CHUNK);
        let txn = db.begin().await?;
        users::Entity::insert_many(chunk.iter().map(|a| user(a, now, Some(password_hash))))
            .exec(&txn)
            .await?;
        sessions::Entity::insert_many(chunk.iter().zip(ids).map(|(a, &id)| session(a, now, id)))
            .exec(&txn)
            .await?;
        txn.commit().await?;
    }
    let sessions = session_ids
        .iter()
        .zip(&members)
        .map(|(&session, account)| (session, account.id))
        .collect();
    Ok(Prepared {
        pending,
        members,
        authorizations: access_tokens
            .iter()
            .map(|t| format!("Bearer {t}"))
            .collect(),
        sessions,
        access_tokens,
    })
}

/// Prints how far a long preparation is, every tenth of the way (only for 100,000 or more).
struct Progress {
    total: usize,
    what: &'static str,
    started: std::time::Instant,
    next: std::cell::Cell<usize>,
}

impl Progress {
    fn new(total: usize, what: &'static str) -> Self {
        Self {
            total,
            what,
            started: std::time::Instant::now(),
            next: std::cell::Cell::new((total / 10).max(1)),
        }
    }

    /// `done` of the total are done.
    fn tick(&self, done: usize) {
        if self.total < 100_000 || done < self.next.get() {
            return;
        }
        self.next.set(done + (self.total / 10).max(1));
        eprintln!(
            "  {done} of {} {} ({:.0} s)",
            self.total,
            self.what,
            self.started.elapsed().as_secs_f64()
        );
    }
}

fn user(account: &Account, now: DateTime<Utc>, password_hash: Option<&str>) -> users::ActiveModel {
    users::ActiveModel {
        id: Set(account.id),
        email: Set(account.email.clone()),
        password_hash: Set(password_hash.map(str::to_owned)),
        email_verified_at: Set(password_hash.map(|_| now)),
        password_changed_at: Set(None),
        locale: Set("en".into()),
        created_at: Set(now),
        updated_at: Set(now),
        disabled_at: Set(None),
    }
}

/// A live code whose stored HMAC is 32 random bytes: no six digits match it, so every guess
/// is wrong, and checking a guess costs what it costs for any code.
fn live_code(account: &Account, now: DateTime<Utc>, key_id: &str) -> otp_codes::ActiveModel {
    let hash: [u8; 32] = rand::random();
    otp_codes::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(account.id),
        purpose: Set("verify_email".into()),
        code_hash: Set(hex::encode(hash)),
        key_id: Set(key_id.to_owned()),
        email: Set(account.email.clone()),
        attempts: Set(0),
        max_attempts: Set(CODE_MAX_ATTEMPTS),
        created_at: Set(now),
        // Live for the whole run, however long it is configured to be.
        expires_at: Set(now + chrono::Duration::hours(6)),
        consumed_at: Set(None),
        revoked_at: Set(None),
        ip: Set(Some("127.0.0.1".into())),
        user_agent: Set(None),
        code_sealed: Set(None),
    }
}

fn session(account: &Account, now: DateTime<Utc>, id: Uuid) -> sessions::ActiveModel {
    sessions::ActiveModel {
        id: Set(id),
        user_id: Set(account.id),
        device_name: Set(Some("bench".into())),
        ip: Set(Some("127.0.0.1".into())),
        user_agent: Set(None),
        refresh_expires_at: Set(now + chrono::Duration::days(30)),
        expires_at: Set(now + chrono::Duration::days(90)),
        created_at: Set(now),
        // Used "now" for the whole run: `get_me` brings `last_used_at` up to date once a
        // minute per session, and with this every run checks tokens without that write,
        // whatever the number of sessions. (Stamped with the preparation's time instead, a
        // million sessions, prepared minutes before, would each take the write on their one
        // request of the run, and ten thousand only on their first.)
        last_used_at: Set(now + chrono::Duration::hours(6)),
        auth_time: Set(now),
        auth_method: Set("pwd".into()),
        revoked_at: Set(None),
        revoked_reason: Set(None),
    }
}

/// How much room the prepared database takes, in bytes.
pub struct Sizes {
    pub total: u64,
    /// The tables' own pages.
    pub tables: u64,
    /// The indexes' pages (primary keys included where they are separate structures).
    pub indexes: u64,
}

/// The database's size, tables and indexes apart: SQLite's `dbstat` (after a checkpoint, so
/// the WAL's pages are in the file), PostgreSQL's relation sizes.
pub async fn sizes(db: &DatabaseConnection) -> anyhow::Result<Sizes> {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
    let backend = db.get_database_backend();
    let number = |sql: &str| {
        let statement = Statement::from_string(backend, sql.to_owned());
        async move {
            let row = db
                .query_one(statement)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no answer"))?;
            anyhow::Ok(row.try_get_by_index::<i64>(0)? as u64)
        }
    };
    match backend {
        DatabaseBackend::Sqlite => {
            db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
                .await?;
            let total =
                number("SELECT page_count * page_size FROM pragma_page_count, pragma_page_size")
                    .await?;
            let indexes = number(
                "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat \
                 WHERE name IN (SELECT name FROM sqlite_schema WHERE type = 'index')",
            )
            .await?;
            let tables = number(
                "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat \
                 WHERE name IN (SELECT name FROM sqlite_schema WHERE type = 'table')",
            )
            .await?;
            Ok(Sizes {
                total,
                tables,
                indexes,
            })
        }
        _ => {
            let total = number("SELECT pg_database_size(current_database())").await?;
            let tables = number(
                "SELECT COALESCE(SUM(pg_table_size(relid)), 0)::bigint FROM pg_stat_user_tables",
            )
            .await?;
            let indexes = number(
                "SELECT COALESCE(SUM(pg_indexes_size(relid)), 0)::bigint FROM pg_stat_user_tables",
            )
            .await?;
            Ok(Sizes {
                total,
                tables,
                indexes,
            })
        }
    }
}
