//! Rate limits. Per client network (an IPv4 address or an IPv6 /64) in memory (governor), per
//! operation group; per address or account in the database, so they hold across any number of
//! instances: the resend cooldown, the hourly cap on codes, and the growing delay after
//! repeated password failures.

use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::rate_counters;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use sea_orm::sea_query::{Expr, OnConflict, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter,
    QueryTrait, Set,
};
use sha2::Sha256;
use uuid::Uuid;

use crate::config::{Config, Pepper, Rate};
use crate::core::Error;
use crate::domain::{ClientNetwork, EmailAddress, Purpose};
use crate::infra::sql_once::SqlOnce;

/// A limit was hit: what the 429 says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limited {
    /// Name of the policy, as in the `RateLimit-Policy` header.
    pub policy: &'static str,
    /// Requests allowed per window.
    pub quota: u32,
    pub window_secs: u64,
    /// Seconds until a request may succeed again (at least 1).
    pub retry_after: u64,
}

impl Limited {
    /// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers structured-field form).
    pub fn policy_header(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.policy, self.quota, self.window_secs
        )
    }

    /// `RateLimit`: nothing remains until the window resets.
    pub fn state_header(&self) -> String {
        format!("\"{}\";r=0;t={}", self.policy, self.retry_after)
    }
}

fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Operation groups that share a per-IP quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// signup, resend_signup_code, forgot_password
    SendCode,
    /// verify_signup, check_reset_code, reset_password
    VerifyCode,
    /// login, change_password
    Login,
    /// refresh_token
    Refresh,
}

impl Group {
    fn policy(self) -> &'static str {
        match self {
            Self::SendCode => "send-code-per-ip",
            Self::VerifyCode => "verify-code-per-ip",
            Self::Login => "login-per-ip",
            Self::Refresh => "refresh-per-ip",
        }
    }
}

struct IpLimiter {
    rate: Rate,
    limiter: DefaultKeyedRateLimiter<ClientNetwork>,
}

/// Per-IP quotas in this process's memory, one per client network: an IPv6 host owns a whole
/// /64, and would otherwise get a fresh quota with every address it picks from it.
pub struct IpLimits {
    send: IpLimiter,
    verify: IpLimiter,
    login: IpLimiter,
    refresh: IpLimiter,
}

impl IpLimits {
    pub fn from_config(config: &Config) -> Self {
        let limiter = |rate: Rate| {
            let count = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::with_period(rate.per / rate.count)
                .unwrap_or_else(|| Quota::per_second(count))
                .allow_burst(count);
            IpLimiter {
                rate,
                limiter: RateLimiter::keyed(quota),
            }
        };
        Self {
            send: limiter(config.ip_rate_send_code),
            verify: limiter(config.ip_rate_verify_code),
            login: limiter(config.ip_rate_login),
            refresh: limiter(config.ip_rate_refresh),
        }
    }

    /// Takes one request from `network`'s quota for `group`. A request without a known IP (not
    /// over TCP) is not limited here; the per-address limits still apply.
    pub fn check(&self, group: Group, network: Option<ClientNetwork>) -> Result<(), Limited> {
        let Some(network) = network else {
            return Ok(());
        };
        let limiter = match group {
            Group::SendCode => &self.send,
            Group::VerifyCode => &self.verify,
            Group::Login => &self.login,
            Group::Refresh => &self.refresh,
        };
        limiter.limiter.check_key(&network).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            Limited {
                policy: group.policy(),
                quota: limiter.rate.count,
                window_secs: limiter.rate.per.as_secs(),
                retry_after: whole_seconds(wait).max(1),
            }
        })
    }

    /// Forgets networks whose quota is full again, so memory follows the active clients only.
    pub fn retain_recent(&self) {
        for limiter in self.all() {
            limiter.limiter.retain_recent();
            limiter.limiter.shrink_to_fit();
        }
    }

    /// Client IPs held in memory, summed over the groups (an IP in two groups counts twice).
    pub fn entries(&self) -> usize {
        self.all().iter().map(|limiter| limiter.limiter.len()).sum()
    }

    fn all(&self) -> [&IpLimiter; 4] {
        [&self.send, &self.verify, &self.login, &self.refresh]
    }
}

/// Limits per address, in the database.
#[derive(Clone)]
pub struct AddressLimits {
    pepper: Pepper,
    resend_cooldown: chrono::Duration,
    codes_per_hour: i32,
    login_free_failures: i32,
    login_window: chrono::Duration,
    login_max_delay: chrono::Duration,
}

/// Starts the password delay: the first blocked attempt waits this long, each further
/// failure doubles it up to the maximum.
const LOGIN_BASE_DELAY_SECS: i64 = 30;

impl AddressLimits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            pepper: config.peppers.current().clone(),
            resend_cooldown: config.code_resend_cooldown(),
            codes_per_hour: i32::try_from(config.codes_per_address_per_hour).unwrap_or(5),
            login_free_failures: i32::try_from(config.login_failures_before_delay).unwrap_or(5),
            login_window: config.login_failure_window(),
            login_max_delay: config.login_max_delay(),
        }
    }

    /// The counter's key: HMAC(pepper, scope ‖ 0 ‖ subject), so no address is stored in clear.
    fn key(&self, scope: &str, subject: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.pepper.key())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(subject);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Takes one code send for `email` and `purpose`, inside the caller's transaction: the
    /// resend cooldown per address and purpose, then the hourly cap per address. Roll the
    /// transaction back when this fails, so a refused request takes nothing.
    pub async fn take_code_send<C: ConnectionTrait>(
        &self,
        txn: &C,
        now: DateTime<Utc>,
        email: &EmailAddress,
        purpose: Purpose,
    ) -> Result<(), Error> {
        let cooldown_key = self.key(
            &format!("cooldown:{}", purpose.name()),
            email.as_str().as_bytes(),
        );
        if self.resend_cooldown > chrono::Duration::zero()
            && let Window::Full { retry_at } =
                take(txn, &cooldown_key, now, self.resend_cooldown, 1).await?
        {
            return Err(Error::Limited(Limited {
                policy: "resend-cooldown",
                quota: 1,
                window_secs: self.resend_cooldown.num_seconds().unsigned_abs(),
                retry_after: seconds_until(now, retry_at),
            }));
        }
        let hourly_key = self.key("codes-per-hour", email.as_str().as_bytes());
        let hour = chrono::Duration::hours(1);
        if let Window::Full { retry_at } =
            take(txn, &hourly_key, now, hour, self.codes_per_hour).await?
        {
            return Err(Error::Limited(Limited {
                policy: "codes-per-address",
                quota: self.codes_per_hour.unsigned_abs(),
                window_secs: 3600,
                retry_after: seconds_until(now, retry_at),
            }));
        }
        Ok(())
    }

    /// Takes one unit for a password check before the password is verified, in one
    /// conditional UPDATE that refuses while `check`'s subject must wait. The unit stays taken
    /// when the password is wrong (it is the failure); `password_accepted` clears the count
    /// and `give_back_password_attempt` returns the unit when no verification happened. From
    /// the `login_free_failures`th unit within the window on, taking one also sets the delay
    /// that a failure earns (30 s, doubling with each further one up to the maximum), so
    /// parallel attempts cannot all pass the check before the first failure is counted: at
    /// most `login_free_failures` passwords are verified before the first delay.
    pub async fn take_password_attempt<C: ConnectionTrait>(
        &self,
        db: &C,
        now: DateTime<Utc>,
        check: PasswordCheck<'_>,
    ) -> Result<(), Error> {
        let key = self.password_key(check);
        ensure_counter(db, &key).await?;
        let window_over =
            Expr::col(rate_counters::Column::WindowStart).lte(now - self.login_window);
        let next_count = Expr::case(window_over.clone(), 1)
            .finally(Expr::col(rate_counters::Column::Count).add(1));
        let blocked_until = self.delay_after(now, next_count.clone().into());
        // MySQL assigns left to right and later expressions see earlier assignments, so every
        // expression that reads `count` or `window_start` comes before they change.
        let taken = rate_counters::Entity::update_many()
            .col_expr(rate_counters::Column::BlockedUntil, blocked_until)
            .col_expr(rate_counters::Column::Count, next_count.into())
            .col_expr(
                rate_counters::Column::WindowStart,
                Expr::case(window_over, Expr::value(now))
                    .finally(Expr::col(rate_counters::Column::WindowStart))
                    .into(),
            )
            .filter(rate_counters::Column::Key.eq(key.as_str()))
            .filter(
                Condition::any()
                    .add(rate_counters::Column::BlockedUntil.is_null())
                    .add(rate_counters::Column::BlockedUntil.lte(now)),
            )
            .exec(db)
            .await?
            .rows_affected
            == 1;
        if taken {
            return Ok(());
        }
        let until = rate_counters::Entity::find_by_id(key)
            .one(db)
            .await?
            .and_then(|counter| counter.blocked_until)
            .unwrap_or(now);
        Err(Error::Limited(Limited {
            policy: check.policy(),
            quota: self.login_free_failures.unsigned_abs(),
            window_secs: self.login_window.num_seconds().unsigned_abs(),
            retry_after: seconds_until(now, until),
        }))
    }

    /// `blocked_until` for an attempt that makes the count `count`: none below the free
    /// failures, then 30 s doubling per failure up to the maximum. A CASE over the few
    /// distinct delays (at most a dozen before the maximum), as SQL has no portable power.
    fn delay_after(&self, now: DateTime<Utc>, count: SimpleExpr) -> SimpleExpr {
        let free = self.login_free_failures;
        let mut delays = Expr::case(
            Expr::expr(count.clone()).lt(free),
            Expr::value(Option::<DateTime<Utc>>::None),
        );
        let mut doublings = 0u32;
        loop {
            let delay = chrono::Duration::seconds(LOGIN_BASE_DELAY_SECS << doublings);
            if delay >= self.login_max_delay || doublings >= 20 {
                break;
            }
            let at = free.saturating_add(i32::try_from(doublings).unwrap_or(i32::MAX));
            delays = delays.case(Expr::expr(count.clone()).eq(at), Expr::value(now + delay));
            doublings += 1;
        }
        delays
            .finally(Expr::value(now + self.login_max_delay))
            .into()
    }

    /// Returns the unit of an attempt whose password was never verified (the hashing queue
    /// was full, say), and the delay it set if it was the one that reached the free failures.
    pub async fn give_back_password_attempt<C: ConnectionTrait>(
        &self,
        db: &C,
        check: PasswordCheck<'_>,
    ) -> Result<(), DbErr> {
        let count = Expr::col(rate_counters::Column::Count);
        rate_counters::Entity::update_many()
            .col_expr(
                rate_counters::Column::BlockedUntil,
                Expr::case(
                    Expr::expr(count.clone().sub(1)).lt(self.login_free_failures),
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .finally(Expr::col(rate_counters::Column::BlockedUntil))
                .into(),
            )
            .col_expr(rate_counters::Column::Count, count.sub(1))
            .filter(rate_counters::Column::Key.eq(self.password_key(check)))
            .filter(rate_counters::Column::Count.gt(0))
            .exec(db)
            .await?;
        Ok(())
    }

    /// A right password clears the failures of `check`'s subject, its own unit with them.
    pub async fn password_accepted<C: ConnectionTrait>(
        &self,
        db: &C,
        check: PasswordCheck<'_>,
    ) -> Result<(), DbErr> {
        // Reset in place, not deleted: an attempt running beside this one has made sure the row
        // exists and is about to take its unit from it; were the row gone, that attempt would
        // find nothing to take and be refused as if delayed.
        rate_counters::Entity::update_many()
            .col_expr(rate_counters::Column::Count, Expr::value(0))
            .col_expr(
                rate_counters::Column::BlockedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(rate_counters::Column::Key.eq(self.password_key(check)))
            .exec(db)
            .await?;
        Ok(())
    }

    /// Removes every counter kept for `email` and its account `user_id` (code sends per
    /// purpose, the hourly cap, failed sign-ins and password changes), inside the caller's
    /// transaction: what account deletion leaves of them is nothing.
    pub async fn forget<C: ConnectionTrait>(
        &self,
        db: &C,
        email: &EmailAddress,
        user_id: Uuid,
    ) -> Result<u64, DbErr> {
        let address = email.as_str().as_bytes();
        let mut keys: Vec<String> = Purpose::ALL
            .iter()
            .map(|purpose| self.key(&format!("cooldown:{}", purpose.name()), address))
            .collect();
        keys.push(self.key("codes-per-hour", address));
        keys.push(self.password_key(PasswordCheck::SignIn(email)));
        keys.push(self.password_key(PasswordCheck::Change(user_id)));
        let removed = rate_counters::Entity::delete_many()
            .filter(rate_counters::Column::Key.is_in(keys))
            .exec(db)
            .await?;
        Ok(removed.rows_affected)
    }

    fn password_key(&self, check: PasswordCheck<'_>) -> String {
        match check {
            PasswordCheck::SignIn(email) => self.key("login-failures", email.as_str().as_bytes()),
            PasswordCheck::Change(user_id) => {
                self.key("change-password-failures", user_id.as_bytes())
            }
        }
    }
}

/// What a password check counts against: the address at sign-in (known or not), the account
/// at a password change. Both get the same free failures, window and growing delay.
#[derive(Clone, Copy, Debug)]
pub enum PasswordCheck<'a> {
    SignIn(&'a EmailAddress),
    Change(Uuid),
}

impl PasswordCheck<'_> {
    fn policy(self) -> &'static str {
        match self {
            Self::SignIn(_) => "login-failures-per-address",
            Self::Change(_) => "change-password-failures-per-account",
        }
    }
}

fn seconds_until(now: DateTime<Utc>, at: DateTime<Utc>) -> u64 {
    let millis = (at - now).num_milliseconds().max(0).unsigned_abs();
    millis.div_ceil(1000).max(1)
}

/// Makes sure the counter `key` has a row (an empty one, its window long over), so the
/// conditional UPDATE that takes a unit has a row to work on; changes nothing otherwise.
async fn ensure_counter<C: ConnectionTrait>(db: &C, key: &str) -> Result<(), DbErr> {
    rate_counters::Entity::insert(rate_counters::ActiveModel {
        key: Set(key.to_owned()),
        window_start: Set(DateTime::<Utc>::UNIX_EPOCH),
        count: Set(0),
        blocked_until: Set(None),
    })
    .on_conflict(
        OnConflict::column(rate_counters::Column::Key)
            .do_nothing_on([rate_counters::Column::Count])
            .to_owned(),
    )
    .do_nothing()
    .exec(db)
    .await?;
    Ok(())
}

/// What taking a unit from a fixed window found.
enum Window {
    Taken,
    Full { retry_at: DateTime<Utc> },
}

/// Takes one unit from a fixed-window counter (`limit` at least 1): a new window starts when
/// the old one is over. PostgreSQL and SQLite make the row and take the unit in one
/// conditional upsert (a new counter starts its window with the unit taken; an existing one
/// gives it only while the window allows); MySQL/MariaDB, whose upsert takes no condition,
/// make sure the row exists and then take the unit in one conditional UPDATE.
async fn take<C: ConnectionTrait>(
    db: &C,
    key: &str,
    now: DateTime<Utc>,
    window: chrono::Duration,
    limit: i32,
) -> Result<Window, DbErr> {
    use rate_counters::Column;
    let affected = if db.get_database_backend() == DatabaseBackend::MySql {
        ensure_counter(db, key).await?;
        let window_over = Expr::col(Column::WindowStart).lte(now - window);
        // MySQL assigns left to right: `count` must be computed before `window_start` changes.
        rate_counters::Entity::update_many()
            .col_expr(
                Column::Count,
                Expr::case(window_over.clone(), 1)
                    .finally(Expr::col(Column::Count).add(1))
                    .into(),
            )
            .col_expr(
                Column::WindowStart,
                Expr::case(window_over.clone(), Expr::value(now))
                    .finally(Expr::col(Column::WindowStart))
                    .into(),
            )
            .filter(Column::Key.eq(key))
            .filter(
                Condition::any()
                    .add(window_over)
                    .add(Column::Count.lt(limit)),
            )
            .exec(db)
            .await?
            .rows_affected
    } else {
        // Every code request runs it twice (the cooldown and the hourly count): its SQL is
        // built once (see `SqlOnce`).
        static UPSERT: SqlOnce = SqlOnce::new();
        let backend = db.get_database_backend();
        let cutoff = now - window;
        let values = vec![
            key.into(),
            now.into(),
            1.into(),
            None::<DateTime<Utc>>.into(),
            cutoff.into(),
            1.into(),
            1.into(),
            cutoff.into(),
            now.into(),
            cutoff.into(),
            limit.into(),
        ];
        let statement = UPSERT.statement(backend, values, || {
            // The existing row's columns, named with the table (the proposed row is `excluded`).
            let existing = |column: Column| Expr::col((rate_counters::Entity, column));
            let window_over = existing(Column::WindowStart).lte(cutoff);
            rate_counters::Entity::insert(rate_counters::ActiveModel {
                key: Set(key.to_owned()),
                window_start: Set(now),
                count: Set(1),
                blocked_until: Set(None),
            })
            .on_conflict(
                OnConflict::column(Column::Key)
                    .value(
                        Column::Count,
                        Expr::case(window_over.clone(), 1).finally(existing(Column::Count).add(1)),
                    )
                    .value(
                        Column::WindowStart,
                        Expr::case(window_over.clone(), Expr::value(now))
                            .finally(existing(Column::WindowStart)),
                    )
                    .action_and_where(window_over.or(existing(Column::Count).lt(limit)))
                    .to_owned(),
            )
            .build(backend)
        });
        db.execute(statement).await?.rows_affected()
    };
    let taken = affected == 1;
    if taken {
        return Ok(Window::Taken);
    }
    let window_start = rate_counters::Entity::find_by_id(key.to_owned())
        .one(db)
        .await?
        .map_or(now, |c| c.window_start);
    Ok(Window::Full {
        retry_at: window_start + window,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ip_quota_refuses_past_its_burst_with_a_retry_time() {
        let limits = IpLimits::from_config(&test_config(&["--ip-rate-send-code=3/min"]));

        for _ in 0..3 {
            assert!(limits.check(Group::SendCode, net("203.0.113.1")).is_ok());
        }
        let limited = limits
            .check(Group::SendCode, net("203.0.113.1"))
            .unwrap_err();

        assert_eq!(limited.policy, "send-code-per-ip");
        assert!((1..=20).contains(&limited.retry_after), "{limited:?}");
        assert_eq!(limited.policy_header(), "\"send-code-per-ip\";q=3;w=60");
        assert!(
            limits.check(Group::SendCode, net("203.0.113.2")).is_ok(),
            "another IP has its own quota"
        );
        assert!(
            limits.check(Group::VerifyCode, net("203.0.113.1")).is_ok(),
            "another group too"
        );
    }

    #[test]
    fn one_ipv6_64_shares_one_quota_whatever_address_it_uses() {
        let limits = IpLimits::from_config(&test_config(&["--ip-rate-login=2/min"]));

        assert!(limits.check(Group::Login, net("2001:db8:1:2::1")).is_ok());
        assert!(limits.check(Group::Login, net("2001:db8:1:2::2")).is_ok());
        let third = limits.check(Group::Login, net("2001:db8:1:2:ffff::3"));

        assert!(third.is_err(), "the same /64");
        assert!(limits.check(Group::Login, net("2001:db8:1:3::1")).is_ok());
    }

    fn net(ip: &str) -> Option<ClientNetwork> {
        Some(ClientNetwork::from(ip.parse::<std::net::IpAddr>().unwrap()))
    }

    use crate::config::tests::test_config;
}
