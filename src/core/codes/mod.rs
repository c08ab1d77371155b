//! The code engine: issues and verifies the six-digit codes of every purpose. The only place
//! that knows how codes are hashed: HMAC-SHA256(pepper[key_id], purpose ‖ 0 ‖ user id ‖ code).
//!
//! Every check-then-act is one conditional UPDATE, so concurrent guesses can never exceed a
//! limit and one code is accepted at most once:
//! 1. reserve one unit of the daily failure budget of this user, purpose and client network
//!    (an IPv4 address or an IPv6 /64), so a stranger spends their own network's budget;
//! 2. reserve one unit of the daily ceiling of this user and purpose over all networks;
//! 3. count the attempt on the live code, only while it is under its attempt limit;
//! 4. compare in constant time;
//! 5. a right code gives every unit back and, when consumed, is marked used only if unused.
//!
//! A repeated request re-sends the live code: while a code of that user and purpose (and
//! address) is live and younger than one TTL, a new request emails the same code again and
//! renews its lifetime, so a slow first email never makes the typed code wrong and no code
//! lives past two TTLs. The live code is kept sealed in its row for that (bound to the user and
//! purpose) and erased when it is used, replaced or expired.

use chrono::{DateTime, Utc};
use entity::{otp_budgets, otp_codes};
use hmac::{Hmac, Mac};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set,
};
use sha2::Sha256;
use uuid::Uuid;

use crate::config::{Config, Pepper};
use crate::core::Error;
use crate::core::mail::{CodeSeal, Email, Message, outbox};
use crate::core::seal::{Seal, associated_data};
use crate::domain::{ClientNetwork, EmailAddress, OtpCode, Purpose, Requester};
use crate::infra::metrics::Metrics;
use crate::infra::sql_once::SqlOnce;

mod attempts;

use attempts::{Budgets, count_attempt, network_key};

#[derive(Clone)]
pub struct CodeEngine {
    /// New codes are hashed with this key.
    current: Pepper,
    /// The current pepper first; older ones still verify the codes they hashed.
    peppers: Vec<Pepper>,
    /// Seals each code for its email, so the outbox never holds it in clear.
    seal: CodeSeal,
    /// Seals the live code in its own row, so a repeated request can send it again.
    live_seal: Seal,
    pub ttl: chrono::Duration,
    pub max_attempts: i32,
    /// Wrong attempts per user, purpose and client network in 24 hours.
    pub daily_failure_budget: i32,
    /// Wrong attempts per user and purpose from all networks together in 24 hours.
    pub daily_failure_ceiling: i32,
    metrics: Metrics,
}

/// The recipient side of a code: whose it is and where it goes. `user_id` is `None` when no
/// account has the address: the engine then does the same work for nobody, writing void rows.
pub struct CodeRecipient<'a> {
    pub user_id: Option<Uuid>,
    pub email: &'a EmailAddress,
    pub locale: &'a str,
}

/// The decoys (rows inserted by a migration, no user behind them): a wrong guess for an
/// unknown address runs its statements on a random decoy's code and ceiling (and on a network
/// budget of the address's own), so it costs what a real wrong guess costs. Their codes hash no digits at all, and `attempt` never reports a
/// match for a decoy.
pub fn decoy_user_ids() -> impl Iterator<Item = Uuid> {
    (0..DECOY_COUNT).map(|i| Uuid::from_u128(FIRST_DECOY_USER_ID + i))
}

/// How many decoys migration 7 inserted: a wrong guess for an unknown address picks one at
/// random, so their rows are as spread out (and as cold) as those of the accounts real guesses
/// hit. The migration holds its own frozen copy of these values.
const DECOY_COUNT: u128 = 64;
/// The first decoy's user id; the others follow it.
const FIRST_DECOY_USER_ID: u128 = 0xdec0_dec0_dec0_4dec_8dec_0000_0000_0000;

/// What live codes are sealed under in their rows (`core::seal`): keys of their own.
const LIVE_CODE_LABEL: &[u8] = b"codeward live code";

/// A live code's seal is bound to its user and purpose.
fn live_code_aad(user_id: Uuid, purpose: Purpose) -> Vec<u8> {
    associated_data(&[&user_id.to_string(), purpose.name()])
}

fn random_decoy() -> Uuid {
    use rand::Rng;
    let i = rand::rng().random_range(0..DECOY_COUNT);
    Uuid::from_u128(FIRST_DECOY_USER_ID + i)
}

/// Who makes a code attempt: the account the address leads to (`None` for an address no
/// account has, or none the attempt may use), the address, and the client network the attempt
/// comes from.
pub struct Guesser<'a> {
    pub user_id: Option<Uuid>,
    pub email: &'a EmailAddress,
    pub network: Option<ClientNetwork>,
}

/// A live code whose digits matched; `consume` turns it into a one-time success.
#[derive(Debug)]
pub struct Matched {
    code_id: Uuid,
    user_id: Uuid,
    purpose: Purpose,
}

impl Matched {
    /// Whose code it is (never a decoy: a decoy never matches).
    pub fn user_id(&self) -> Uuid {
        self.user_id
    }
}

impl CodeEngine {
    pub fn from_config(config: &Config) -> Self {
        Self {
            current: config.peppers.current().clone(),
            peppers: config.peppers.all().cloned().collect(),
            seal: CodeSeal::new(config.peppers.all()),
            live_seal: Seal::new(config.peppers.all(), LIVE_CODE_LABEL),
            ttl: config.code_ttl(),
            max_attempts: i32::try_from(config.code_max_attempts).unwrap_or(5),
            daily_failure_budget: i32::try_from(config.code_daily_failure_budget).unwrap_or(25),
            daily_failure_ceiling: i32::try_from(config.code_daily_failure_ceiling).unwrap_or(100),
            metrics: Metrics::default(),
        }
    }

    /// Counts issued, verified and failed codes in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    fn mac(pepper: &Pepper, purpose: Purpose, user_id: Uuid, code: &OtpCode) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; `validate` guarantees at least 32 bytes.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper.key())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose.name().as_bytes());
        mac.update(&[0]);
        mac.update(user_id.as_bytes());
        mac.update(code.expose().as_bytes());
        mac
    }

    /// Issues a new code inside the caller's transaction: older live codes of this user and
    /// purpose die, the new code's HMAC is stored, and its email is enqueued, all committed
    /// together. The caller wakes the outbox after committing.
    ///
    /// Without a user (no account has the address) the very same statements run, and what they
    /// write is void from birth: the code row is revoked as it is inserted, under a fresh id
    /// no user has and without the address; the outbox row is `void`, without the address, and
    /// never sent. Housekeeping removes both. The request takes the same time either way: no
    /// savepoint, no rollback, no statement that only one path runs.
    pub async fn issue<C: ConnectionTrait>(
        &self,
        txn: &C,
        now: DateTime<Utc>,
        purpose: Purpose,
        to: CodeRecipient<'_>,
        requester: &Requester,
    ) -> Result<(), Error> {
        let email = self.issue_rows(txn, now, purpose, &to, requester).await?;
        if to.user_id.is_some() {
            outbox::enqueue(txn, email, now).await?;
        } else {
            outbox::enqueue_void(txn, email, now).await?;
        }
        Ok(())
    }

    /// For an account that must get a notice instead of a code (a verified account at
    /// sign-up): writes a void code as `issue` does for nobody, and enqueues `notice` in place
    /// of the code email, so this path costs what issuing a code costs.
    pub async fn notice_instead(
        &self,
        txn: &DatabaseTransaction,
        now: DateTime<Utc>,
        purpose: Purpose,
        to: CodeRecipient<'_>,
        requester: &Requester,
        notice: Email,
    ) -> Result<(), Error> {
        let nobody = CodeRecipient {
            user_id: None,
            ..to
        };
        self.issue_rows(txn, now, purpose, &nobody, requester)
            .await?;
        outbox::enqueue(txn, notice, now).await?;
        Ok(())
    }

    /// Inserts a fresh failure ceiling (`otp_budgets`: wrong attempts from all networks
    /// together) for every purpose under `user_id`, inside the caller's transaction. The
    /// per-network budgets are made by the first guess from each network. Sign-up calls it
    /// once on every path: for a new account with its id, so
    /// its budgets exist before any code is issued (issuing then never inserts one, for known
    /// and unknown addresses alike); for an existing or verified address with a fresh id, so
    /// that path costs the same (housekeeping removes budgets no account has).
    pub async fn create_budgets<C: ConnectionTrait>(
        &self,
        txn: &C,
        now: DateTime<Utc>,
        user_id: Uuid,
    ) -> Result<(), DbErr> {
        otp_budgets::Entity::insert_many(Purpose::ALL.map(|purpose| otp_budgets::ActiveModel {
            user_id: Set(user_id),
            purpose: Set(purpose.name().to_owned()),
            window_start: Set(now),
            failures: Set(0),
        }))
        .exec(txn)
        .await?;
        Ok(())
    }

    /// The code statements: revoke the older live codes, insert the new code, make sure the
    /// failure ceiling exists (for accounts made before `create_budgets`; the upsert changes
    /// nothing otherwise). For nobody they run on a fresh id (the revoke matches nothing, the
    /// code is born revoked) and the upsert on a decoy's budget. Counted as `issued` on every
    /// path, void codes included: a count that moved for accounts only would tell anyone who
    /// can read the metrics which addresses have one.
    async fn issue_rows<C: ConnectionTrait>(
        &self,
        txn: &C,
        now: DateTime<Utc>,
        purpose: Purpose,
        to: &CodeRecipient<'_>,
        requester: &Requester,
    ) -> Result<Email, Error> {
        let nobody = to.user_id.is_none();
        let user_id = to.user_id.unwrap_or_else(Uuid::new_v4);
        let expires_at = now + self.ttl;
        let code = match self.renew_live(txn, now, purpose, user_id, to).await? {
            Some(code) => code,
            None => {
                self.insert_new(txn, now, purpose, user_id, to, requester)
                    .await?
            }
        };
        let budget_owner = if nobody { random_decoy() } else { user_id };
        static ENSURE_BUDGET: SqlOnce = SqlOnce::new();
        let backend = txn.get_database_backend();
        let values = vec![
            budget_owner.into(),
            purpose.name().into(),
            now.into(),
            0.into(),
        ];
        let ensure_budget = ENSURE_BUDGET.statement(backend, values, || {
            otp_budgets::Entity::insert(otp_budgets::ActiveModel {
                user_id: Set(budget_owner),
                purpose: Set(purpose.name().to_owned()),
                window_start: Set(now),
                failures: Set(0),
            })
            .on_conflict(
                OnConflict::columns([otp_budgets::Column::UserId, otp_budgets::Column::Purpose])
                    .do_nothing_on([otp_budgets::Column::Failures])
                    .to_owned(),
            )
            .build(backend)
        });
        txn.execute(ensure_budget).await?;
        self.metrics.code(purpose.name(), "issued");
        let message = match purpose {
            Purpose::VerifyEmail => Message::VerifyEmail,
            Purpose::ResetPassword => Message::ResetPassword,
            Purpose::Login => Message::Login,
            Purpose::ChangeEmail => Message::ChangeEmail,
            Purpose::Reauthenticate => Message::Reauthenticate,
        };
        // Sealed for nobody too (the void row then drops it), so both paths do this work.
        let sealed = self
            .seal
            .seal(
                &secrecy::SecretString::from(code.expose()),
                to.email.as_str(),
                message.name(),
            )
            .ok_or(Error::Seal)?;
        Ok(Email {
            to: to.email.as_str().to_owned(),
            message,
            locale: to.locale.to_owned(),
            context: serde_json::json!({ "expires_in_minutes": self.ttl.num_minutes() }),
            code: Some(sealed),
            expires_at,
        })
    }

    /// The live code of this user, purpose and address, when it is younger than one TTL, still
    /// takes attempts and can be opened: its lifetime renewed to a full TTL from `now` (its
    /// attempt count stays) by a conditional update, and its digits returned to be sent again.
    /// `None` otherwise (and always for nobody: a fresh id has no code).
    async fn renew_live<C: ConnectionTrait>(
        &self,
        txn: &C,
        now: DateTime<Utc>,
        purpose: Purpose,
        user_id: Uuid,
        to: &CodeRecipient<'_>,
    ) -> Result<Option<OtpCode>, DbErr> {
        // Every code request runs this and the renewal below: their SQL is built once.
        static FIND: SqlOnce = SqlOnce::new();
        static RENEW: SqlOnce = SqlOnce::new();
        let backend = txn.get_database_backend();
        let born_after = now - self.ttl;
        let values = vec![
            user_id.into(),
            purpose.name().into(),
            to.email.as_str().into(),
            now.into(),
            born_after.into(),
            1u64.into(),
        ];
        let find = FIND.statement(backend, values, || {
            otp_codes::Entity::find()
                .filter(otp_codes::Column::UserId.eq(user_id))
                .filter(otp_codes::Column::Purpose.eq(purpose.name()))
                .filter(otp_codes::Column::Email.eq(to.email.as_str()))
                .filter(otp_codes::Column::ConsumedAt.is_null())
                .filter(otp_codes::Column::RevokedAt.is_null())
                .filter(otp_codes::Column::ExpiresAt.gt(now))
                .filter(otp_codes::Column::CreatedAt.gt(born_after))
                .filter(otp_codes::Column::CodeSealed.is_not_null())
                .filter(
                    Expr::col(otp_codes::Column::Attempts)
                        .lt(Expr::col(otp_codes::Column::MaxAttempts)),
                )
                .order_by_desc(otp_codes::Column::CreatedAt)
                .limit(1)
                .build(backend)
        });
        let live = otp_codes::Model::find_by_statement(find).one(txn).await?;
        let Some(live) = live else {
            return Ok(None);
        };
        let aad = live_code_aad(user_id, purpose);
        let opened = live
            .code_sealed
            .as_deref()
            .and_then(|sealed| self.live_seal.open(sealed, &aad).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|digits| OtpCode::parse(&digits));
        let Some(code) = opened else {
            return Ok(None); // sealed under a pepper no longer configured: a new code then
        };
        let expires_at = now + self.ttl;
        let values = vec![expires_at.into(), live.id.into(), now.into()];
        let renew = RENEW.statement(backend, values, || {
            otp_codes::Entity::update_many()
                .col_expr(otp_codes::Column::ExpiresAt, Expr::value(expires_at))
                .filter(otp_codes::Column::Id.eq(live.id))
                .filter(otp_codes::Column::ConsumedAt.is_null())
                .filter(otp_codes::Column::RevokedAt.is_null())
                .filter(otp_codes::Column::ExpiresAt.gt(now))
                .build(backend)
        });
        let renewed = txn.execute(renew).await?;
        Ok((renewed.rows_affected() == 1).then_some(code))
    }

    /// A new code: every older live code of this user and purpose dies (and its sealed copy
    /// with it), and the new one is stored as its HMAC and, while live, sealed. For nobody the
    /// row is void from birth (revoked, no address, nothing sealed).
    async fn insert_new<C: ConnectionTrait>(
        &self,
        txn: &C,
        now: DateTime<Utc>,
        purpose: Purpose,
        user_id: Uuid,
        to: &CodeRecipient<'_>,
        requester: &Requester,
    ) -> Result<OtpCode, Error> {
        let pepper = &self.current;
        let nobody = to.user_id.is_none();
        let code = OtpCode::generate();
        let hash = hex::encode(
            Self::mac(pepper, purpose, user_id, &code)
                .finalize()
                .into_bytes(),
        );
        otp_codes::Entity::update_many()
            .col_expr(otp_codes::Column::RevokedAt, Expr::value(now))
            .col_expr(otp_codes::Column::CodeSealed, Expr::value(None::<String>))
            .filter(otp_codes::Column::UserId.eq(user_id))
            .filter(otp_codes::Column::Purpose.eq(purpose.name()))
            .filter(otp_codes::Column::ConsumedAt.is_null())
            .filter(otp_codes::Column::RevokedAt.is_null())
            .exec(txn)
            .await?;
        // Sealed for nobody too (and then dropped), so both paths do this work.
        let sealed = self
            .live_seal
            .seal(code.expose().as_bytes(), &live_code_aad(user_id, purpose))
            .ok_or(Error::Seal)?;
        let row = otp_codes::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(user_id),
            purpose: Set(purpose.name().to_owned()),
            code_hash: Set(hash),
            key_id: Set(pepper.key_id.clone()),
            // An address no account has is not kept.
            email: Set(if nobody { "" } else { to.email.as_str() }.to_owned()),
            attempts: Set(0),
            max_attempts: Set(self.max_attempts),
            created_at: Set(now),
            expires_at: Set(now + self.ttl),
            consumed_at: Set(None),
            revoked_at: Set(nobody.then_some(now)),
            ip: Set(requester.ip.clone()),
            user_agent: Set(requester.user_agent.clone()),
            code_sealed: Set((!nobody).then_some(sealed)),
        };
        // Not read back: no RETURNING (nor, on MySQL, a SELECT of the new row).
        otp_codes::Entity::insert(row)
            .exec_without_returning(txn)
            .await?;
        Ok(code)
    }

    /// Makes one attempt with `code` on the guesser's live code of `purpose`, counting it
    /// against the code's attempt limit, the daily budget of the user, purpose and client
    /// network, and the daily ceiling of the user and purpose. `Some` when the digits match a
    /// live code; every count is then given back, so only wrong attempts use them up. Runs in
    /// the caller's transaction, which the caller commits before it answers (whatever its
    /// answer), so a wrong attempt stays counted. Its first statement writes (the network
    /// budget's upsert), so that transaction may be begun with `Transactions::begin_writing`.
    /// Without a user (unknown address), the same reads and writes hit rows no account has
    /// and change nothing that matters, so a guess costs the same whether or not the account
    /// exists.
    ///
    /// Every attempt that does not match counts as `failed`, whatever stopped it (wrong digits,
    /// an expired, used-up or missing code, a budget, an unknown address): counting only
    /// some of them would tell an unknown address from an account whose code has expired.
    pub async fn attempt<C: ConnectionTrait>(
        &self,
        db: &C,
        now: DateTime<Utc>,
        purpose: Purpose,
        code: &OtpCode,
        guesser: Guesser<'_>,
    ) -> Result<Option<Matched>, DbErr> {
        let matched = self.try_code(db, now, purpose, code, guesser).await?;
        if matched.is_none() {
            self.metrics.code(purpose.name(), "failed");
        }
        Ok(matched)
    }

    /// `attempt` without the count.
    async fn try_code<C: ConnectionTrait>(
        &self,
        db: &C,
        now: DateTime<Utc>,
        purpose: Purpose,
        code: &OtpCode,
        guesser: Guesser<'_>,
    ) -> Result<Option<Matched>, DbErr> {
        // An unknown address runs the very same statements on a random decoy's code and
        // ceiling: the code never expires or runs out of attempts, the ceiling has no cap, and
        // the decoy never matches. Its network budget is kept under an id derived from the
        // address instead (no account has it), with the same cap as an account's: the decoys
        // share every network's rows, so on a decoy's a first guess from a network would
        // mostly update a row where an account's first guess inserts one. Keyed by the
        // address, the row is inserted by that address's first guess from the network and
        // updated by the later ones, exactly as an account's is.
        let network = network_key(guesser.network);
        let per_network = self.daily_failure_budget;
        let (is_decoy, user_id, budgets, ceiling) = match guesser.user_id {
            Some(user_id) => (
                false,
                user_id,
                Budgets::new(user_id, user_id, purpose, network),
                self.daily_failure_ceiling,
            ),
            None => {
                let decoy = random_decoy();
                let owner = self.unknown_address_id(guesser.email);
                (
                    true,
                    decoy,
                    Budgets::new(decoy, owner, purpose, network),
                    i32::MAX,
                )
            }
        };
        // The network's budget first: a stranger whose network is spent never touches the
        // ceiling, not even for a moment, so their refused guesses cannot crowd out the
        // owner's right code; and neither touches the code, whose attempts stay the owner's.
        if !budgets.reserve_network(db, now, per_network).await? {
            if !is_decoy {
                tracing::warn!(%user_id, purpose = purpose.name(), network = %budgets.network, "daily code failure budget of the network exhausted");
            }
            return Ok(None);
        }
        if !budgets.reserve_ceiling(db, now, ceiling).await? {
            budgets.refund_network(db).await?;
            tracing::warn!(%user_id, purpose = purpose.name(), "daily code failure ceiling exhausted");
            return Ok(None);
        }
        let Some(live) = count_attempt(db, now, user_id, purpose).await? else {
            // No live code, or it expired or ran out of attempts: no attempt happened.
            budgets.refund(db).await?;
            return Ok(None);
        };
        let matches = self
            .peppers
            .iter()
            .find(|p| p.key_id == live.key_id)
            .is_some_and(|pepper| {
                hex::decode(&live.code_hash).is_ok_and(|stored| {
                    Self::mac(pepper, purpose, user_id, code)
                        .verify_slice(&stored)
                        .is_ok()
                })
            });
        if !matches || is_decoy {
            return Ok(None);
        }
        budgets.refund(db).await?;
        otp_codes::Entity::update_many()
            .col_expr(
                otp_codes::Column::Attempts,
                Expr::col(otp_codes::Column::Attempts).sub(1),
            )
            .filter(otp_codes::Column::Id.eq(live.id))
            .exec(db)
            .await?;
        Ok(Some(Matched {
            code_id: live.id,
            user_id,
            purpose,
        }))
    }

    /// Uses the matched code up, inside the caller's transaction, so the code is spent if and
    /// only if the caller's change commits. `false` when another request used it first or it
    /// expired meanwhile.
    pub async fn consume<C: ConnectionTrait>(
        &self,
        txn: &C,
        now: DateTime<Utc>,
        matched: &Matched,
    ) -> Result<bool, DbErr> {
        let consumed = otp_codes::Entity::update_many()
            .col_expr(otp_codes::Column::ConsumedAt, Expr::value(now))
            .col_expr(otp_codes::Column::CodeSealed, Expr::value(None::<String>))
            .filter(otp_codes::Column::Id.eq(matched.code_id))
            .filter(otp_codes::Column::UserId.eq(matched.user_id))
            .filter(otp_codes::Column::Purpose.eq(matched.purpose.name()))
            .filter(otp_codes::Column::ConsumedAt.is_null())
            .filter(otp_codes::Column::RevokedAt.is_null())
            .filter(otp_codes::Column::ExpiresAt.gt(now))
            .exec(txn)
            .await?;
        if consumed.rows_affected == 1 {
            self.metrics.code(matched.purpose.name(), "verified");
        }
        Ok(consumed.rows_affected == 1)
    }

    /// The id an unknown address's network budgets are kept under: HMAC of the address under
    /// the current pepper, so it is the same for every guess at the address, no account has
    /// it, and the address is not stored.
    fn unknown_address_id(&self, email: &EmailAddress) -> Uuid {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.current.key())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"unknown-address");
        mac.update(&[0]);
        mac.update(email.as_str().as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Uuid::from_bytes(id)
    }

    /// Kills every live code of the user (all purposes), e.g. after a password reset.
    pub async fn revoke_all<C: ConnectionTrait>(
        &self,
        txn: &C,
        now: DateTime<Utc>,
        user_id: Uuid,
    ) -> Result<u64, DbErr> {
        let result = otp_codes::Entity::update_many()
            .col_expr(otp_codes::Column::RevokedAt, Expr::value(now))
            .col_expr(otp_codes::Column::CodeSealed, Expr::value(None::<String>))
            .filter(otp_codes::Column::UserId.eq(user_id))
            .filter(otp_codes::Column::ConsumedAt.is_null())
            .filter(otp_codes::Column::RevokedAt.is_null())
            .exec(txn)
            .await?;
        Ok(result.rows_affected)
    }
}
