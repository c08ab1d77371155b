//! Signing keys in the database and their rotation. Every state change is a conditional update
//! (or an insert into a unique slot), so instances racing to rotate agree on one outcome: the
//! unique `slot` index holds at most one `current` and one `next` key at any moment.

use chrono::{DateTime, Utc};
use entity::signing_keys;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set, SqlErr, TransactionTrait,
};

use crate::config::TokenAlgorithm;
use crate::core::keys::material::{self, KeyError, KeyPair, PrivateDer};
use crate::core::seal::{OpenError, Seal, associated_data};

pub const SLOT_CURRENT: &str = "current";
pub const SLOT_NEXT: &str = "next";
const STATE_RETIRED: &str = "retired";

/// When keys change hands.
#[derive(Clone, Copy, Debug)]
pub struct RotationPolicy {
    pub algorithm: TokenAlgorithm,
    /// How long a key signs.
    pub rotation: chrono::Duration,
    /// How long a new key is published before it signs.
    pub prepublish: chrono::Duration,
    /// How long a retired key stays published: the longest life of a token it signed, plus the
    /// time an instance may still sign with it before it learns of the new key.
    pub retired_publication: chrono::Duration,
}

/// What the operator asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotate {
    /// Only what the schedule (or a change of algorithm) calls for.
    Scheduled,
    /// Start a rotation now: a new key is published, and signs once pre-published.
    Soon,
    /// A new key signs at once (a leaked key): backends that cached the key set before it was
    /// published refuse its tokens until they fetch the set again.
    Now,
}

/// What one maintenance pass changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// A key created, and in which slot.
    pub created: Option<(String, &'static str)>,
    /// The key that started signing.
    pub promoted: Option<String>,
    /// Retired keys no longer published, deleted.
    pub purged: u64,
    /// Keys sealed again under the current pepper.
    pub resealed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Database(#[from] DbErr),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("signing key {kid} cannot be opened: {reason}")]
    Sealed { kid: String, reason: OpenError },
    #[error("no pepper to seal signing keys with")]
    NoPepper,
    #[error("no signing key is current (is the database migrated?)")]
    NoCurrentKey,
}

/// Every stored key, oldest first.
pub async fn all<C: ConnectionTrait>(db: &C) -> Result<Vec<signing_keys::Model>, DbErr> {
    signing_keys::Entity::find()
        .order_by_asc(signing_keys::Column::CreatedAt)
        .all(db)
        .await
}

/// A key as `codeward keys list --json` shows it (no key material, public or private).
#[derive(Debug, serde::Serialize)]
pub struct Listed {
    pub kid: String,
    pub algorithm: String,
    pub state: String,
    pub published: bool,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_until: Option<DateTime<Utc>>,
    pub pepper_key_id: String,
}

pub fn listed(key: &signing_keys::Model, now: DateTime<Utc>) -> Listed {
    Listed {
        kid: key.id.clone(),
        algorithm: key.algorithm.clone(),
        state: key.state.clone(),
        published: is_published(key, now),
        created_at: key.created_at,
        activated_at: key.activated_at,
        retired_at: key.retired_at,
        published_until: key.published_until,
        pepper_key_id: key.pepper_key_id.clone(),
    }
}

/// Whether a key is in the key set at `now`: the next key, the current one, and retired ones
/// until every token they signed has expired.
pub fn is_published(key: &signing_keys::Model, now: DateTime<Utc>) -> bool {
    key.slot.is_some() || key.published_until.is_some_and(|until| until > now)
}

/// Opens the private half of a stored key.
pub fn open_private(seal: &Seal, key: &signing_keys::Model) -> Result<PrivateDer, KeysError> {
    seal.open(&key.private_sealed, &aad(&key.id, &key.algorithm))
        .map(PrivateDer::new)
        .map_err(|reason| KeysError::Sealed {
            kid: key.id.clone(),
            reason,
        })
}

fn aad(kid: &str, algorithm: &str) -> Vec<u8> {
    associated_data(&[kid, algorithm])
}

/// Brings the keys up to date: a first key on an empty table, a new key pre-published when
/// the current one is due (or another algorithm is configured), the hand-over once it was
/// published long enough, retired keys deleted once no token of theirs can be alive, and keys
/// sealed under an older pepper sealed again under the current one.
///
/// Instances (and `codeward keys rotate`) may do this at the same moment; every step is
/// conditional on the state it read, so on MySQL/MariaDB, whose locks can deadlock here, the
/// whole pass is simply run again on a deadlock or serialization failure.
pub async fn maintain(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    seal: &Seal,
    policy: &RotationPolicy,
    rotate: Rotate,
) -> Result<Maintenance, KeysError> {
    const TRIES: u64 = 5;
    let mut attempt = 1;
    loop {
        match maintain_once(db, now, seal, policy, rotate).await {
            Err(KeysError::Database(error))
                if attempt < TRIES && crate::infra::db::is_retryable(&error) =>
            {
                let jitter = rand::random_range(0..20);
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt + jitter)).await;
                attempt += 1;
            }
            done => return done,
        }
    }
}

async fn maintain_once(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    seal: &Seal,
    policy: &RotationPolicy,
    rotate: Rotate,
) -> Result<Maintenance, KeysError> {
    let mut done = Maintenance::default();
    let keys = all(db).await?;
    let in_slot = |slot: &str| {
        keys.iter()
            .find(|k| k.slot.as_deref() == Some(slot))
            .cloned()
    };
    let (current, mut next) = (in_slot(SLOT_CURRENT), in_slot(SLOT_NEXT));

    if let Some(stale) = next
        .as_ref()
        .filter(|n| n.algorithm != policy.algorithm.name())
    {
        // Made for an algorithm no longer configured, and it never signed: drop it.
        signing_keys::Entity::delete_many()
            .filter(signing_keys::Column::Id.eq(stale.id.as_str()))
            .filter(signing_keys::Column::Slot.eq(SLOT_NEXT))
            .exec(db)
            .await?;
        next = None;
    }
    match current {
        None => {
            // A first start: nobody can hold a token yet, so a key signs at once.
            if let Some(next) = next {
                if promote(db, now, None, &next.id, policy).await? {
                    done.promoted = Some(next.id);
                }
            } else if let Some(kid) = create(db, now, seal, policy.algorithm, SLOT_CURRENT).await? {
                done.created = Some((kid, SLOT_CURRENT));
            }
        }
        Some(current) => {
            let signing_since = current.activated_at.unwrap_or(current.created_at);
            let due = rotate != Rotate::Scheduled
                || current.algorithm != policy.algorithm.name()
                || now >= signing_since + policy.rotation - policy.prepublish;
            if next.is_none() && due {
                if let Some(kid) = create(db, now, seal, policy.algorithm, SLOT_NEXT).await? {
                    done.created = Some((kid, SLOT_NEXT));
                }
                next = in_slot_now(db, SLOT_NEXT).await?;
            }
            if let Some(next) = next
                && (rotate == Rotate::Now || now >= next.created_at + policy.prepublish)
                && promote(db, now, Some(&current.id), &next.id, policy).await?
            {
                done.promoted = Some(next.id);
            }
        }
    }
    done.purged = signing_keys::Entity::delete_many()
        .filter(signing_keys::Column::Slot.is_null())
        .filter(signing_keys::Column::PublishedUntil.lte(now))
        .exec(db)
        .await?
        .rows_affected;
    done.resealed = reseal(db, seal).await?;
    Ok(done)
}

async fn in_slot_now<C: ConnectionTrait>(
    db: &C,
    slot: &str,
) -> Result<Option<signing_keys::Model>, DbErr> {
    signing_keys::Entity::find()
        .filter(signing_keys::Column::Slot.eq(slot))
        .one(db)
        .await
}

/// Generates a key and stores it in `slot`; `None` when another instance filled the slot first.
async fn create(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    seal: &Seal,
    algorithm: TokenAlgorithm,
    slot: &'static str,
) -> Result<Option<String>, KeysError> {
    let pair = tokio::task::spawn_blocking(move || material::generate(algorithm))
        .await
        .map_err(|e| KeyError::Generate(e.to_string()))??;
    let KeyPair { kid, jwk, private } = pair;
    let sealed = seal
        .seal(private.expose(), &aad(&kid, algorithm.name()))
        .ok_or(KeysError::NoPepper)?;
    let public_jwk = serde_json::to_string(&jwk).map_err(|e| KeyError::Generate(e.to_string()))?;
    let row = signing_keys::ActiveModel {
        id: Set(kid.clone()),
        algorithm: Set(algorithm.name().to_owned()),
        state: Set(slot.to_owned()),
        slot: Set(Some(slot.to_owned())),
        public_jwk: Set(public_jwk),
        private_sealed: Set(sealed),
        pepper_key_id: Set(seal.current_key_id().unwrap_or_default().to_owned()),
        created_at: Set(now),
        activated_at: Set((slot == SLOT_CURRENT).then_some(now)),
        retired_at: Set(None),
        published_until: Set(None),
    };
    match row.insert(db).await {
        Ok(_) => {
            tracing::info!(%kid, algorithm = algorithm.name(), slot, "signing key created");
            Ok(Some(kid))
        }
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// Hands signing over from `current` (if any) to `next`, in one transaction of two conditional
/// updates: if another instance moved either key first, nothing changes here.
async fn promote(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    current: Option<&str>,
    next: &str,
    policy: &RotationPolicy,
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    if let Some(current) = current {
        let retired = signing_keys::Entity::update_many()
            .col_expr(signing_keys::Column::Slot, Expr::value(None::<String>))
            .col_expr(signing_keys::Column::State, Expr::value(STATE_RETIRED))
            .col_expr(signing_keys::Column::RetiredAt, Expr::value(now))
            .col_expr(
                signing_keys::Column::PublishedUntil,
                Expr::value(now + policy.retired_publication),
            )
            .filter(signing_keys::Column::Id.eq(current))
            .filter(signing_keys::Column::Slot.eq(SLOT_CURRENT))
            .exec(&txn)
            .await?
            .rows_affected;
        if retired != 1 {
            return Ok(false); // dropping the transaction rolls it back
        }
    }
    let promoted = signing_keys::Entity::update_many()
        .col_expr(signing_keys::Column::Slot, Expr::value(SLOT_CURRENT))
        .col_expr(signing_keys::Column::State, Expr::value(SLOT_CURRENT))
        .col_expr(signing_keys::Column::ActivatedAt, Expr::value(now))
        .filter(signing_keys::Column::Id.eq(next))
        .filter(signing_keys::Column::Slot.eq(SLOT_NEXT))
        .exec(&txn)
        .await;
    match promoted {
        Ok(result) if result.rows_affected == 1 => {
            txn.commit().await?;
            tracing::info!(kid = next, retired = current, "signing key now signs");
            Ok(true)
        }
        Ok(_) => Ok(false),
        // Another instance put a key in the current slot meanwhile.
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

/// Seals again, under the current pepper, every key sealed under an older one, so that the
/// older pepper can be removed. A key no configured pepper opens is reported and left alone.
async fn reseal(db: &DatabaseConnection, seal: &Seal) -> Result<u64, DbErr> {
    let Some(current_pepper) = seal.current_key_id() else {
        return Ok(0);
    };
    let mut resealed = 0;
    for key in all(db).await? {
        if key.pepper_key_id == current_pepper {
            continue;
        }
        let private = match open_private(seal, &key) {
            Ok(private) => private,
            Err(error) => {
                tracing::error!(%error, "signing key sealed under a pepper that is not configured");
                continue;
            }
        };
        let Some(sealed) = seal.seal(private.expose(), &aad(&key.id, &key.algorithm)) else {
            continue;
        };
        resealed += signing_keys::Entity::update_many()
            .col_expr(signing_keys::Column::PrivateSealed, Expr::value(sealed))
            .col_expr(
                signing_keys::Column::PepperKeyId,
                Expr::value(current_pepper),
            )
            .filter(signing_keys::Column::Id.eq(key.id.as_str()))
            .filter(signing_keys::Column::PrivateSealed.eq(key.private_sealed.as_str()))
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(resealed)
}
