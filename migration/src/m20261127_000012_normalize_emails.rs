//! Rewrites the stored addresses (`users.email`, and `otp_codes.email` where it is not empty)
//! to the normal form the server now parses every address into: trimmed; the local part a
//! lowercase ASCII dot-atom of at most 64 octets; the domain in NFC and as its IDNA A-label,
//! never an IP address; at most 254 octets. Releases before it stored addresses trimmed and
//! lowercased only, so `bob@bücher.example` could not be found as `bob@xn--bcher-kva.example`.
//!
//! Two accounts whose addresses have one normal form are one mailbox with two accounts:
//! which one the mailbox's owner means to keep is not for a migration to guess, so both rows
//! stay as they are, and so does an address the normal form refuses (a quoted local part, an
//! IP address…). Each is reported as a warning in the log, naming user ids only (addresses
//! stay out of logs); docs/operations.md says what to do with them.
//!
//! Frozen with this migration: the normal form below is a copy of the rules of
//! `codeward::domain::EmailAddress` as they were when it was written.

use std::collections::BTreeMap;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::prelude::Uuid;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use unicode_normalization::UnicodeNormalization;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // All rewritten or none. On PostgreSQL this nests (a savepoint) in the migrator's own
        // transaction; SQLite and MySQL/MariaDB run migrations outside one.
        let txn = manager.get_connection().begin().await?;
        let users = normalize_users(&txn).await?;
        let codes = normalize_codes(&txn).await?;
        txn.commit().await?;
        tracing::info!(
            users_rewritten = users.rewritten,
            users_colliding = users.colliding,
            users_refused = users.refused,
            codes_rewritten = codes.rewritten,
            codes_refused = codes.refused,
            "email normal form: stored addresses rewritten"
        );
        Ok(())
    }

    /// Nothing to undo, and nothing it could undo: the spellings it replaced are not kept
    /// (several may have become one), and the releases before it need none of them back, as a
    /// normal form is also an address they accept and store unchanged.
    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}

/// What happened to the rows of one table.
#[derive(Default)]
struct Tally {
    rewritten: usize,
    colliding: usize,
    refused: usize,
}

async fn normalize_users(txn: &DatabaseTransaction) -> Result<Tally, DbErr> {
    let mut tally = Tally::default();
    let select = Query::select()
        .columns([Users::Id, Users::Email])
        .from(Users::Table)
        .order_by(Users::Id, Order::Asc)
        .to_owned();
    // The accounts of each normal form, with what each has stored.
    let mut by_normal_form: BTreeMap<String, Vec<(Uuid, String)>> = BTreeMap::new();
    for row in txn
        .query_all(txn.get_database_backend().build(&select))
        .await?
    {
        let id: Uuid = row.try_get("", "id")?;
        let email: String = row.try_get("", "email")?;
        match normal_form(&email) {
            Ok(normal) => by_normal_form.entry(normal).or_default().push((id, email)),
            Err(reason) => {
                tally.refused += 1;
                tracing::warn!(
                    user_id = %id,
                    reason,
                    "email normal form: the stored address is one the server now refuses; \
                     left unchanged, and its owner cannot sign in with it \
                     (docs/operations.md, \"Addresses left by migration 12\")"
                );
            }
        }
    }
    let mut to_rewrite: Vec<(Uuid, String)> = Vec::new();
    for (normal, accounts) in by_normal_form {
        match accounts.as_slice() {
            [(id, stored)] => {
                if *stored != normal {
                    to_rewrite.push((*id, normal));
                }
            }
            _ => {
                tally.colliding += accounts.len();
                report_collision(accounts.iter().map(|(id, _)| *id));
            }
        }
    }
    // The database compares by its own collation too: MySQL/MariaDB's default folds accents,
    // so `bucher` there equals a `bücher` another row still holds. A rewrite waits until that
    // row has moved (a later round); one still blocked when no round moves anything is a
    // collision in the database's eyes, reported like the others.
    loop {
        let mut blocked = Vec::new();
        let before = to_rewrite.len();
        for (id, normal) in to_rewrite {
            match holder_of(txn, &normal, id).await? {
                Some(holder) => blocked.push((id, normal, holder)),
                None => {
                    let update = Query::update()
                        .table(Users::Table)
                        .value(Users::Email, normal)
                        .and_where(Expr::col(Users::Id).eq(id))
                        .to_owned();
                    txn.execute(txn.get_database_backend().build(&update))
                        .await?;
                    tally.rewritten += 1;
                }
            }
        }
        if blocked.is_empty() || blocked.len() == before {
            for (id, _, holder) in blocked {
                tally.colliding += 1;
                report_collision([id, holder]);
            }
            return Ok(tally);
        }
        to_rewrite = blocked
            .into_iter()
            .map(|(id, normal, _)| (id, normal))
            .collect();
    }
}

fn report_collision(ids: impl IntoIterator<Item = Uuid>) {
    let users = ids
        .into_iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    tracing::warn!(
        users,
        "email normal form: these accounts' addresses have one normal form (one mailbox, \
         several accounts); all left unchanged for the operator to resolve \
         (docs/operations.md, \"Addresses left by migration 12\")"
    );
}

/// Another account whose stored address the database takes for `email`.
async fn holder_of(
    txn: &DatabaseTransaction,
    email: &str,
    except: Uuid,
) -> Result<Option<Uuid>, DbErr> {
    let select = Query::select()
        .column(Users::Id)
        .from(Users::Table)
        .and_where(Expr::col(Users::Email).eq(email))
        .and_where(Expr::col(Users::Id).ne(except))
        .to_owned();
    match txn
        .query_one(txn.get_database_backend().build(&select))
        .await?
    {
        Some(row) => Ok(Some(row.try_get("", "id")?)),
        None => Ok(None),
    }
}

/// A code's address only records where it was sent, and nothing is unique about it: each one
/// with a normal form gets it. Empty ones belong to void and decoy codes and stay empty.
async fn normalize_codes(txn: &DatabaseTransaction) -> Result<Tally, DbErr> {
    let mut tally = Tally::default();
    let select = Query::select()
        .columns([OtpCodes::Id, OtpCodes::Email])
        .from(OtpCodes::Table)
        .and_where(Expr::col(OtpCodes::Email).ne(""))
        .to_owned();
    for row in txn
        .query_all(txn.get_database_backend().build(&select))
        .await?
    {
        let id: Uuid = row.try_get("", "id")?;
        let email: String = row.try_get("", "email")?;
        match normal_form(&email) {
            Ok(normal) if normal != email => {
                let update = Query::update()
                    .table(OtpCodes::Table)
                    .value(OtpCodes::Email, normal)
                    .and_where(Expr::col(OtpCodes::Id).eq(id))
                    .to_owned();
                txn.execute(txn.get_database_backend().build(&update))
                    .await?;
                tally.rewritten += 1;
            }
            Ok(_) => {}
            Err(_) => tally.refused += 1,
        }
    }
    Ok(tally)
}

/// The normal form of an address, or the code (as the API names it) of the rule it breaks.
fn normal_form(raw: &str) -> Result<String, &'static str> {
    let trimmed = raw.trim();
    if trimmed.len() > 1024 {
        return Err("too_long");
    }
    if trimmed.is_empty() {
        return Err("required");
    }
    let (local, domain) = trimmed.rsplit_once('@').ok_or("invalid")?;
    let address = format!("{}@{}", local_part(local)?, domain_name(domain)?);
    if address.len() > 254 {
        return Err("too_long");
    }
    Ok(address)
}

fn local_part(local: &str) -> Result<String, &'static str> {
    if local.contains(['"', '\\']) {
        return Err("quoted_local_part");
    }
    if !local.is_ascii() {
        return Err("non_ascii_local_part");
    }
    let is_atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    let dot_atom = local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext));
    if !dot_atom || local.len() > 64 {
        return Err("invalid");
    }
    Ok(local.to_ascii_lowercase())
}

fn domain_name(domain: &str) -> Result<String, &'static str> {
    if domain.starts_with('[') || domain.ends_with(']') {
        return Err("ip_domain");
    }
    let composed: String = domain.nfc().collect();
    let ascii = Uts46::new()
        .to_ascii(
            composed.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Check,
            DnsLength::Verify,
        )
        .map_err(|_| "invalid")?;
    let last = ascii.rsplit('.').next().unwrap_or(&ascii);
    let decimal = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    let hex = last
        .strip_prefix("0x")
        .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_hexdigit()));
    if decimal || hex {
        return Err("ip_domain");
    }
    if !ascii.contains('.') {
        return Err("invalid");
    }
    Ok(ascii.into_owned())
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
}

#[derive(DeriveIden)]
enum OtpCodes {
    Table,
    Id,
    Email,
}
