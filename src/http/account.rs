//! Tag `account`: the signed-in user's own account.

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::app::account;
use crate::app::deletion::{self, DeleteAccount};
use crate::core::audit::Cursor;
use crate::http::auth::BearerAuth;
use crate::http::middleware::wake_outbox;
use crate::http::problem::{ApiError, ProblemJson, SignedIn, SignedInRecent};
use crate::http::schemas::{User, example_time};
use crate::http::{ApiTags, AppState};

pub struct AccountApi;

/// One security event of the account.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ActivityEvent {
    /// The event's id.
    pub id: uuid::Uuid,
    /// `signup`, `verification`, `login`, `refresh_replay`, `password_reset`,
    /// `password_change`, `email_change`, `logout`, `session_revoked` or `reauthentication`;
    /// an operator's actions are `admin_read`, `admin_disable`, `admin_enable` and
    /// `admin_revoke_sessions`.
    pub event: String,
    /// How it went, e.g. `success`, `failure`, `wrong_password`, `session_revoked`.
    pub outcome: String,
    /// The client IP; absent if unknown.
    #[oai(skip_serializing_if_is_none)]
    pub ip: Option<String>,
    /// The client's User-Agent, without control or bidirectional-text characters; absent if
    /// it sent none.
    #[oai(skip_serializing_if_is_none)]
    pub user_agent: Option<String>,
    /// The session concerned; absent if none.
    #[oai(skip_serializing_if_is_none)]
    pub session_id: Option<uuid::Uuid>,
    /// The API key behind an operator's action through the admin API; absent on every other
    /// event (an action taken with `codeward users` has none either).
    #[oai(skip_serializing_if_is_none)]
    pub api_key_id: Option<uuid::Uuid>,
    /// When it happened.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl Example for ActivityEvent {
    fn example() -> Self {
        Self {
            id: uuid::uuid!("0195f3a4-0d2e-7f31-a6b9-8c7d6e5f4a3b"),
            event: "login".to_owned(),
            outcome: "success".to_owned(),
            ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("Codeward/1.4 (iPhone; iOS 18.2)".to_owned()),
            session_id: Some(uuid::uuid!("0195f3a2-6c1e-7d40-9b8a-3f2e1d0c4b5a")),
            api_key_id: None,
            created_at: example_time(),
        }
    }
}

impl From<account::ActivityEvent> for ActivityEvent {
    fn from(event: account::ActivityEvent) -> Self {
        Self {
            id: event.id,
            event: event.event,
            outcome: event.outcome,
            ip: event.ip,
            user_agent: event.user_agent,
            session_id: event.session_id,
            api_key_id: event.api_key_id,
            created_at: event.created_at,
        }
    }
}

/// A page of activity, newest first.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ActivityPage {
    /// The events of this page.
    pub items: Vec<ActivityEvent>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

impl Example for ActivityPage {
    fn example() -> Self {
        Self {
            items: vec![ActivityEvent::example()],
            next_cursor: None,
        }
    }
}

#[derive(ApiResponse)]
pub enum ActivityResponse {
    /// A page of the user's security events, newest first.
    #[oai(status = 200)]
    Ok(Json<ActivityPage>),
    /// `invalid_request`: `cursor` is not one this server gave out, or `limit` is not a whole
    /// number from 1 to 100.
    #[oai(status = 400)]
    BadCursor(ProblemJson),
}

#[derive(ApiResponse)]
pub enum MeResponse {
    /// The signed-in user.
    #[oai(status = 200)]
    Ok(Json<User>),
}

#[derive(ApiResponse)]
pub enum DeleteAccountResponse {
    /// The account and everything naming it are gone; every token of it is dead, and a
    /// notice went to its address.
    #[oai(status = 204)]
    Deleted,
}

#[OpenApi(tag = "ApiTags::Account")]
impl AccountApi {
    /// The signed-in user
    ///
    /// Returns the account the access token belongs to.
    #[oai(path = "/v1/me", method = "get", operation_id = "get_me")]
    async fn get_me(&self, auth: BearerAuth) -> Result<MeResponse, ApiError<SignedIn>> {
        Ok(MeResponse::Ok(Json(account::me(&auth.0).into())))
    }

    /// Delete the account
    ///
    /// Removes the signed-in user's account and everything that names it (sessions, refresh
    /// tokens, codes, budgets, security activity) at once, and emails a notice. Every token
    /// of the account stops working immediately; the address can sign up again. Needs a
    /// recent authentication.
    #[oai(
        path = "/v1/me",
        method = "delete",
        operation_id = "delete_account",
        transform = "wake_outbox"
    )]
    async fn delete_account(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<DeleteAccountResponse, ApiError<SignedInRecent>> {
        match deletion::delete_account(&state, &auth.0).await? {
            DeleteAccount::Deleted => Ok(DeleteAccountResponse::Deleted),
            DeleteAccount::SignedOut => Err(ApiError::unauthorized()),
        }
    }

    /// The signed-in user's security activity
    ///
    /// Sign-ups, verifications, sign-ins (and failed ones), detected refresh-token replays,
    /// password resets and changes, sign-outs and revoked sessions of this account, newest
    /// first, a page at a time.
    #[oai(
        path = "/v1/me/activity",
        method = "get",
        operation_id = "list_activity"
    )]
    async fn list_activity(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Events per page, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u64>>,
        /// `next_cursor` of the previous page; absent for the first page.
        cursor: Query<Option<String>>,
    ) -> Result<ActivityResponse, ApiError<SignedIn>> {
        let after = match cursor.0.as_deref().map(Cursor::decode) {
            None => None,
            Some(Some(cursor)) => Some(cursor),
            Some(None) => {
                return Ok(ActivityResponse::BadCursor(ProblemJson::bad_cursor()));
            }
        };
        let page = account::activity(&state, &auth.0, limit.0.unwrap_or(20), after).await?;
        Ok(ActivityResponse::Ok(Json(ActivityPage {
            items: page.events.into_iter().map(ActivityEvent::from).collect(),
            next_cursor: page.next.map(|cursor| cursor.encode()),
        })))
    }
}
