//! The ceilings: what the database (and argon2) can do at all, with no HTTP, no routing, no
//! JSON and no query building. Each scenario's database statements, written out as SQL in the
//! form codeward's queries take, run through the same driver (sqlx under sea-orm), the same
//! connections (`codeward::infra::db::connect_for_serving` with the server's configuration:
//! on SQLite one writer connection beside a read pool), the same write transactions (S1's and
//! S2's begin where codeward's do, `codeward::infra::writes::Transactions`: in place on a
//! SQLite file) and the same concurrency as the scenario.

use chrono::{DateTime, Utc};
use codeward::infra::db::Connections;
use codeward::infra::writes::Transactions;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Statement, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A statement written with `?` placeholders, numbered for PostgreSQL.
fn statement(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DatabaseBackend::Postgres {
        let mut numbered = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                numbered.push_str(&format!("${n}"));
            } else {
                numbered.push(c);
            }
        }
        numbered
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The client network codeward keeps a guess's budget under for the benchmark's requests
/// (from 127.0.0.1, an IPv4 address is its own network).
pub const NETWORK: &str = "127.0.0.1";

/// A guess's first statement: a unit of its client network's failure budget, the row made by
/// the network's first guess (codeward's `Budgets::reserve_network` on SQLite and PostgreSQL).
/// Its values: the row's key (user, purpose, network), the window's start, 1, the time of the
/// guess; then the cutoff a day ago twice, the new window's start, the time of the guess, the
/// cutoff and the budget.
pub const NETWORK_UPSERT: &str = "INSERT INTO otp_network_budgets (user_id, purpose, network, \
     window_start, failures, last_attempt_at) VALUES (?, ?, ?, ?, ?, ?) \
     ON CONFLICT (user_id, purpose, network) DO UPDATE SET \
     failures = CASE WHEN otp_network_budgets.window_start <= ? THEN 1 \
     ELSE otp_network_budgets.failures + 1 END, \
     window_start = CASE WHEN otp_network_budgets.window_start <= ? THEN ? \
     ELSE otp_network_budgets.window_start END, last_attempt_at = ? \
     WHERE otp_network_budgets.window_start <= ? OR otp_network_budgets.failures < ?";

fn none_string() -> Value {
    Value::String(None)
}

fn none_time() -> Value {
    Value::ChronoDateTimeUtc(None)
}

/// S1's statements for a wrong guess on a known, unverified account with a live code: find
/// the account, reserve a unit of the client network's failure budget (made by its first
/// guess) and one of the account's ceiling over all networks, find the live code and count
/// the attempt (one statement), record the failure in the audit trail; all but the lookup in
/// one write transaction, as codeward does.
pub async fn wrong_guess(
    db: &Connections,
    now: DateTime<Utc>,
    email: &str,
    budget: i32,
) -> Result<(), DbErr> {
    let b = db.reads.get_database_backend();
    let user_id = find_user(db, email).await?;
    let day_ago = now - chrono::Duration::hours(24);
    // Its first statement writes, as codeward's attempt does: no lock statement first.
    let txn = Transactions::new(db).begin_writing().await?;
    txn.execute(statement(
        b,
        NETWORK_UPSERT,
        vec![
            user_id.into(),
            "verify_email".into(),
            NETWORK.into(),
            now.into(),
            1i32.into(),
            now.into(),
            day_ago.into(),
            day_ago.into(),
            now.into(),
            now.into(),
            day_ago.into(),
            budget.into(),
        ],
    ))
    .await?;
    txn.execute(statement(
        b,
        "UPDATE otp_budgets SET failures = CASE WHEN window_start <= ? THEN 1 ELSE failures + 1 END, \
         window_start = CASE WHEN window_start <= ? THEN ? ELSE window_start END \
         WHERE user_id = ? AND purpose = ? AND (window_start <= ? OR failures < ?)",
        vec![
            day_ago.into(),
            day_ago.into(),
            now.into(),
            user_id.into(),
            "verify_email".into(),
            day_ago.into(),
            budget.into(),
        ],
    ))
    .await?;
    // The live code found and its attempt counted in one statement, as codeward does on
    // SQLite and PostgreSQL (the only databases this benchmark runs on).
    txn.query_one(statement(
        b,
        "UPDATE otp_codes SET attempts = attempts + 1 WHERE id IN (SELECT id FROM otp_codes \
         WHERE user_id = ? AND purpose = ? AND consumed_at IS NULL AND revoked_at IS NULL \
         ORDER BY created_at DESC LIMIT 1) AND consumed_at IS NULL AND revoked_at IS NULL \
         AND expires_at > ? AND attempts < max_attempts RETURNING id, key_id, code_hash",
        vec![user_id.into(), "verify_email".into(), now.into()],
    ))
    .await?
    .ok_or_else(|| DbErr::RecordNotFound("live code".into()))?;
    audit(&txn, now, Some(user_id), "verification", "failure").await?;
    txn.commit().await
}

/// S1's read: the account behind the address, on the read pool.
pub async fn find_user(db: &Connections, email: &str) -> Result<Uuid, DbErr> {
    let user = db
        .reads
        .query_one(statement(
            db.reads.get_database_backend(),
            "SELECT * FROM users WHERE email = ? LIMIT 1",
            vec![email.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(email.into()))?;
    user.try_get("", "id")
}

async fn audit<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    user_id: Option<Uuid>,
    event: &str,
    outcome: &str,
) -> Result<(), DbErr> {
    db.query_one(statement(
        db.get_database_backend(),
        "INSERT INTO audit_events (id, user_id, event, outcome, ip, user_agent, session_id, \
         created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
        vec![
            Uuid::new_v4().into(),
            user_id.into(),
            event.into(),
            outcome.into(),
            "127.0.0.1".into(),
            none_string(),
            Value::Uuid(None),
            now.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// One fixed-window counter take (codeward's `limits::take` on SQLite and PostgreSQL): the row
/// made or its unit taken in one conditional upsert.
async fn take<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    key: &str,
    window: chrono::Duration,
    limit: i32,
) -> Result<(), DbErr> {
    let b = db.get_database_backend();
    let over = now - window;
    db.execute(statement(
        b,
        "INSERT INTO rate_counters (key, window_start, count, blocked_until) VALUES (?, ?, ?, ?) \
         ON CONFLICT (key) DO UPDATE SET \
         count = CASE WHEN rate_counters.window_start <= ? THEN 1 ELSE rate_counters.count + 1 END, \
         window_start = CASE WHEN rate_counters.window_start <= ? THEN ? \
         ELSE rate_counters.window_start END \
         WHERE rate_counters.window_start <= ? OR rate_counters.count < ?",
        vec![
            key.into(),
            now.into(),
            1i32.into(),
            none_time(),
            over.into(),
            over.into(),
            now.into(),
            over.into(),
            limit.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// S2's statements for a reset code to an existing account: one write transaction with the
/// address's two send counters, the account lookup, the revoke of older codes, the new code,
/// its budget row and its outbox row. The outbox row is inserted as
/// already sent, so the idle server's email worker leaves it alone.
pub async fn issue_code(
    db: &Connections,
    now: DateTime<Utc>,
    email: &str,
    key_id: &str,
) -> Result<(), DbErr> {
    let b = db.writer.get_database_backend();
    // Its first statement writes, as codeward's code request does.
    let txn = Transactions::new(db).begin_writing().await?;
    let key = |scope: &str| hex::encode(Sha256::digest(format!("{scope}\0{email}")));
    take(
        &txn,
        now,
        &key("cooldown:reset_password"),
        chrono::Duration::seconds(1),
        1,
    )
    .await?;
    take(
        &txn,
        now,
        &key("codes-per-hour"),
        chrono::Duration::hours(1),
        i32::MAX,
    )
    .await?;
    let user = txn
        .query_one(statement(
            b,
            "SELECT * FROM users WHERE email = ? LIMIT 1",
            vec![email.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(email.into()))?;
    let user_id: Uuid = user.try_get("", "id")?;
    txn.execute(statement(
        b,
        "UPDATE otp_codes SET revoked_at = ? WHERE user_id = ? AND purpose = ? \
             AND consumed_at IS NULL AND revoked_at IS NULL",
        vec![now.into(), user_id.into(), "reset_password".into()],
    ))
    .await?;
    let hash: [u8; 32] = rand::random();
    let expires_at = now + chrono::Duration::minutes(10);
    txn.query_one(statement(
        b,
        "INSERT INTO otp_codes (id, user_id, purpose, code_hash, key_id, email, attempts, \
             max_attempts, created_at, expires_at, consumed_at, revoked_at, ip, user_agent) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
        vec![
            Uuid::new_v4().into(),
            user_id.into(),
            "reset_password".into(),
            hex::encode(hash).into(),
            key_id.into(),
            email.into(),
            0i32.into(),
            5i32.into(),
            now.into(),
            expires_at.into(),
            none_time(),
            none_time(),
            "127.0.0.1".into(),
            none_string(),
        ],
    ))
    .await?;
    txn.execute(statement(
        b,
        "INSERT INTO otp_budgets (user_id, purpose, window_start, failures) \
             VALUES (?, ?, ?, ?) ON CONFLICT (user_id, purpose) DO NOTHING",
        vec![
            user_id.into(),
            "reset_password".into(),
            now.into(),
            0i32.into(),
        ],
    ))
    .await?;
    txn.query_one(statement(
        b,
        "INSERT INTO email_outbox (id, recipient, template, locale, context, code, status, \
             attempts, next_attempt_at, claim_token, last_error, created_at, sent_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
        vec![
            Uuid::new_v4().into(),
            email.into(),
            "reset_password".into(),
            "en".into(),
            r#"{"expires_in_minutes":10}"#.into(),
            none_string(),
            "sent".into(),
            0i32.into(),
            now.into(),
            Value::Uuid(None),
            none_string(),
            now.into(),
            Some(now).into(),
            expires_at.into(),
        ],
    ))
    .await?;
    txn.commit().await
}

/// S4's statement once the token's signature is checked: its live session by the token's
/// `sid` and `sub`, joined with its user.
pub async fn token_check(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    (session_id, user_id): (Uuid, Uuid),
) -> Result<(), DbErr> {
    let b = db.get_database_backend();
    db.query_one(statement(
        b,
        "SELECT sessions.*, users.* FROM sessions LEFT JOIN users ON sessions.user_id = users.id \
         WHERE sessions.id = ? AND sessions.user_id = ? AND sessions.revoked_at IS NULL \
         AND sessions.expires_at > ? LIMIT 1",
        vec![session_id.into(), user_id.into(), now.into()],
    ))
    .await?
    .ok_or_else(|| DbErr::RecordNotFound("session".into()))?;
    Ok(())
}

/// argon2id verifications per second on `threads` threads for `secs`, with the server's
/// parameters, each thread computing into a buffer of its own that it keeps: what S3 could
/// reach if codeward did nothing but verify.
pub fn argon2_rate(
    memory_kib: u32,
    iterations: u32,
    threads: usize,
    window: crate::drive::Window,
    server_pid: Option<u32>,
) -> crate::drive::Stats {
    use crate::server::CpuSnapshot;
    let mut stats = crate::drive::Stats::default();
    use argon2::{Algorithm, Argon2, Block, Params, Version};
    let Ok(params) = Params::new(memory_kib, iterations, 1, None) else {
        return stats;
    };
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt: [u8; 16] = rand::random();
    let started = std::time::Instant::now() + window.warmup;
    let deadline = started + window.measure;
    let done = std::sync::atomic::AtomicU64::new(0);
    let mut cpu_from = None;
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut memory = vec![Block::new(); params.block_count()];
                let mut out = [0u8; 32];
                while std::time::Instant::now() < deadline {
                    let verified = argon2.hash_password_into_with_memory(
                        crate::prepare::PASSWORD.as_bytes(),
                        &salt,
                        &mut out,
                        &mut memory,
                    );
                    if verified.is_ok() && std::time::Instant::now() >= started {
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
        std::thread::sleep(started.saturating_duration_since(std::time::Instant::now()));
        cpu_from = Some(CpuSnapshot::take(server_pid));
    });
    let cpu_to = CpuSnapshot::take(server_pid);
    stats.secs = started.elapsed().as_secs_f64();
    stats.ok = done.into_inner();
    stats.cpu = cpu_from.map(|from| from.until(&cpu_to)).unwrap_or_default();
    stats
}

/// S3's ceiling as one request of an open loop: an argon2id computation with the server's
/// parameters on at most `threads` threads at once (the server's hashing threads), later ones
/// waiting their turn, each computing into one of `threads` buffers kept between requests.
pub fn argon2_op(memory_kib: u32, iterations: u32, threads: usize) -> crate::capacity::Op {
    use argon2::{Algorithm, Argon2, Block, Params, Version};
    use std::sync::{Arc, Mutex};
    let params = Params::new(memory_kib, iterations, 1, None).ok();
    let turns = Arc::new(tokio::sync::Semaphore::new(threads.max(1)));
    let buffers: Arc<Mutex<Vec<Vec<Block>>>> = Arc::default();
    let salt: [u8; 16] = rand::random();
    Arc::new(move |_| -> crate::capacity::BoxedBool {
        let (params, turns, buffers) = (params.clone(), turns.clone(), buffers.clone());
        Box::pin(async move {
            let Some(params) = params else {
                return false;
            };
            let Ok(_turn) = turns.acquire_owned().await else {
                return false;
            };
            tokio::task::spawn_blocking(move || {
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
                let taken = buffers.lock().ok().and_then(|mut b| b.pop());
                let mut memory = taken.unwrap_or_else(|| vec![Block::new(); params.block_count()]);
                let mut out = [0u8; 32];
                let hashed = argon2.hash_password_into_with_memory(
                    crate::prepare::PASSWORD.as_bytes(),
                    &salt,
                    &mut out,
                    &mut memory,
                );
                if let Ok(mut kept) = buffers.lock() {
                    kept.push(memory);
                }
                hashed.is_ok()
            })
            .await
            .unwrap_or(false)
        })
    })
}
