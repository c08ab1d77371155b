//! Housekeeping removes finished rows past their retention and keeps everything still in use.

use chrono::{Duration, Utc};
use codeward::core::housekeeping::{Retention, purge};
use entity::{
    email_outbox, otp_budgets, otp_codes, otp_network_budgets, rate_counters, refresh_tokens,
    sessions, users,
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::Value;

use crate::helpers::{PASSWORD, eventually, run_codeward_on, spawn_app, test_config};

#[tokio::test]
async fn purge_removes_finished_rows_past_retention_and_keeps_live_ones() {
    let app = spawn_app().await;
    // Finished things: a used sign-up code, a rotated refresh token, a revoked session,
    // a delivered email, an idle counter.
    let old: Value = app.signed_up("old@example.com", PASSWORD).await;
    let rotated: Value = app
        .refresh(old["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let logout = app.logout(rotated["access_token"].as_str().unwrap()).await;
    assert_eq!(logout.status().as_u16(), 204);
    app.forgot_password("nobody@example.com").await;
    // A sign-up for the verified address: a notice, and a set of budgets no account has.
    app.signup("old@example.com", PASSWORD).await;
    app.smtp.wait_for_nth_message_to("old@example.com", 2).await;
    let db = app.connect_db().await;
    // The worker records the deliveries after the sink has them.
    eventually("both deliveries recorded", async || {
        email_outbox::Entity::find()
            .filter(
                email_outbox::Column::Status
                    .is_in([email_outbox::Status::Pending, email_outbox::Status::Sending]),
            )
            .count(&db)
            .await
            .unwrap()
            == 0
    })
    .await;
    let config = test_config(&app.database.url, &tempfile::tempdir().unwrap(), &[]);
    let retention = Retention::from_config(&config);
    let later = Utc::now() + Duration::days(40);

    // Right now nothing is old enough but the void rows, which go at once: the code and the
    // email the request for an unknown address wrote, the code the sign-up for a verified one
    // wrote (its email, the notice, is real).
    let now = purge(&db, Utc::now(), &retention).await.unwrap();
    assert_eq!((now.otp_codes, now.email_outbox), (2, 1), "{now:?}");
    assert_eq!(now.total(), 3, "nothing is past retention yet: {now:?}");

    let purged = purge(&db, later, &retention).await.unwrap();

    assert!(purged.otp_codes >= 1, "{purged:?}");
    // One per purpose, made by the sign-up for the verified address under an id nobody has.
    assert_eq!(
        purged.otp_budgets,
        codeward::domain::Purpose::ALL.len() as u64,
        "the budgets nobody has: {purged:?}"
    );
    assert!(purged.sessions >= 1, "{purged:?}");
    assert!(purged.email_outbox >= 1, "{purged:?}");
    assert!(purged.rate_counters >= 1, "{purged:?}");
    assert_eq!(
        purged.audit_events, 0,
        "audit events are kept for a year: {purged:?}"
    );
    let a_year_on = purge(&db, Utc::now() + Duration::days(400), &retention)
        .await
        .unwrap();
    assert!(a_year_on.audit_events >= 3, "{a_year_on:?}");
    let old_session = sessions::Entity::find_by_id(
        uuid::Uuid::parse_str(old["session_id"].as_str().unwrap()).unwrap(),
    )
    .one(&db)
    .await
    .unwrap();
    assert!(old_session.is_none(), "the ended session is gone");
    let orphans = refresh_tokens::Entity::find()
        .filter(
            refresh_tokens::Column::SessionId
                .eq(uuid::Uuid::parse_str(old["session_id"].as_str().unwrap()).unwrap()),
        )
        .count(&db)
        .await
        .unwrap();
    assert_eq!(orphans, 0, "its refresh tokens went with it");
    // What must stay however old: the decoy's rows.
    let decoy = otp_codes::Entity::find()
        .filter(otp_codes::Column::UserId.is_in(codeward::core::codes::decoy_user_ids()))
        .count(&db)
        .await
        .unwrap();
    let purposes = codeward::domain::Purpose::ALL.len() as u64;
    assert_eq!(decoy, purposes * 64, "the decoys' codes are never purged");
    let kept_budgets = otp_budgets::Entity::find().count(&db).await.unwrap();
    assert_eq!(
        kept_budgets,
        purposes * 64 + purposes,
        "the decoys' budgets and the account's (one per purpose) stay"
    );
    let pending_or_sending = email_outbox::Entity::find()
        .filter(
            email_outbox::Column::Status
                .is_in([email_outbox::Status::Pending, email_outbox::Status::Sending]),
        )
        .count(&db)
        .await
        .unwrap();
    assert_eq!(
        pending_or_sending, 0,
        "nothing undelivered was there to lose"
    );
    let counters_left = rate_counters::Entity::find().count(&db).await.unwrap();
    assert_eq!(counters_left, 0, "idle counters are gone");
}

#[tokio::test]
async fn purge_keeps_sessions_and_codes_that_are_still_live() {
    let app = spawn_app().await;
    let session: Value = app.signed_up("ada@example.com", PASSWORD).await;
    app.forgot_password("ada@example.com").await;
    let db = app.connect_db().await;
    let config = test_config(&app.database.url, &tempfile::tempdir().unwrap(), &[]);
    let retention = Retention::from_config(&config);

    // A day later: within every limit.
    let purged = purge(&db, Utc::now() + Duration::days(1), &retention)
        .await
        .unwrap();

    assert_eq!(purged.sessions, 0);
    let me = app.me(session["access_token"].as_str().unwrap()).await;
    assert_eq!(me.status().as_u16(), 200);
    let live_reset = otp_codes::Entity::find()
        .filter(otp_codes::Column::Email.eq("ada@example.com"))
        .filter(otp_codes::Column::Purpose.eq("reset_password"))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(live_reset, 1, "the reset code is still there");
}

#[tokio::test]
async fn purge_removes_network_budgets_of_accounts_and_unknown_addresses_once_their_day_is_over() {
    let app = crate::helpers::spawn_app_with(&["--trusted-proxies=127.0.0.1/32"]).await;
    // A right code (the account's network row, refunded) and wrong guesses for an unknown
    // address from three networks (its own rows).
    app.signed_up("ada@example.com", PASSWORD).await;
    for network in ["203.0.113.1", "203.0.113.2", "2001:db8::1"] {
        let wrong = app
            .forwarded_for(network)
            .check_reset_code("ghost@example.com", "123456")
            .await;
        assert_eq!(wrong.status().as_u16(), 400);
    }
    let db = app.connect_db().await;
    let rows = otp_network_budgets::Entity::find()
        .count(&db)
        .await
        .unwrap();
    assert_eq!(rows, 4);
    let config = test_config(&app.database.url, &tempfile::tempdir().unwrap(), &[]);
    let retention = Retention {
        batch_size: 1,
        ..Retention::from_config(&config)
    };

    let within_the_day = purge(&db, Utc::now() + Duration::hours(23), &retention)
        .await
        .unwrap();
    let a_day_on = purge(&db, Utc::now() + Duration::hours(25), &retention)
        .await
        .unwrap();

    assert_eq!(within_the_day.otp_network_budgets, 0, "{within_the_day:?}");
    assert_eq!(a_day_on.otp_network_budgets, 4, "{a_day_on:?}");
    let left = otp_network_budgets::Entity::find()
        .count(&db)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[test]
fn the_purge_command_reports_what_it_removed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = runtime.block_on(crate::helpers::fresh_database());
    run_codeward_on(&database.url, &["migrate", "up"]);

    let report = run_codeward_on(&database.url, &["purge"]);

    for table in [
        "users",
        "otp_codes",
        "otp_network_budgets",
        "sessions",
        "refresh_tokens",
        "email_outbox",
        "rate_counters",
    ] {
        assert!(report.contains(&format!("{table}\t0\n")), "{report}");
    }
}

/// The id of the account with this address, if there is one.
async fn account_id(db: &DatabaseConnection, email: &str) -> Option<uuid::Uuid> {
    users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(db)
        .await
        .unwrap()
        .map(|user| user.id)
}

#[tokio::test]
async fn purge_removes_accounts_never_verified_past_their_retention_with_their_codes_and_budgets() {
    let app = spawn_app().await;
    let clock = &app.instance.clock;
    for email in [
        "stale@example.com",
        "signed-up-again@example.com",
        "resent@example.com",
    ] {
        assert_eq!(app.signup(email, PASSWORD).await.status().as_u16(), 202);
    }
    app.signed_up("ada@example.com", PASSWORD).await;
    let db = app.connect_db().await;
    let stale = account_id(&db, "stale@example.com").await.unwrap();
    // Six days on, one address signs up again and another asks for a new code.
    clock.advance(std::time::Duration::from_secs(6 * 86_400));
    let again = app.signup("signed-up-again@example.com", PASSWORD).await;
    assert_eq!(again.status().as_u16(), 202);
    let resent = app.resend_signup_code("resent@example.com").await;
    assert_eq!(resent.status().as_u16(), 202);
    // Eight days after the first sign-ups, two after the last sign-up and the last code.
    clock.advance(std::time::Duration::from_secs(2 * 86_400));
    let config = test_config(&app.database.url, &tempfile::tempdir().unwrap(), &[]);
    let retention = Retention::from_config(&config);

    purge(&db, clock.now(), &retention).await.unwrap();

    assert_eq!(account_id(&db, "stale@example.com").await, None);
    for kept in [
        "signed-up-again@example.com",
        "resent@example.com",
        "ada@example.com",
    ] {
        assert!(account_id(&db, kept).await.is_some(), "{kept} is kept");
    }
    let codes = otp_codes::Entity::find()
        .filter(otp_codes::Column::UserId.eq(stale))
        .count(&db)
        .await
        .unwrap();
    let budgets = otp_budgets::Entity::find()
        .filter(otp_budgets::Column::UserId.eq(stale))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(
        (codes, budgets),
        (0, 0),
        "its codes and budgets went with it"
    );
    // The address is free again: a new sign-up is a new account whose code verifies.
    let code = app.signup_code("stale@example.com", PASSWORD).await;
    let verified = app
        .verify_signup("stale@example.com", &code, PASSWORD)
        .await;
    assert_eq!(verified.status().as_u16(), 200);
    assert_ne!(account_id(&db, "stale@example.com").await, Some(stale));
}
