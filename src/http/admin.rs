//! Tag `admin`: operators' tools read, disable, enable and delete accounts and end their
//! sessions, with an API key that has the `admin` scope.

use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::app::admin::{self, Admin, AdminUser as AdminUserView, ForUser, Operator, UserPage};
use crate::core::audit::Cursor;
use crate::core::directory::UserCursor;
use crate::domain::Scope;
use crate::http::account::{ActivityEvent, ActivityPage};
use crate::http::auth::ApiKeyAuth;
use crate::http::middleware::wake_outbox;
use crate::http::problem::{ApiError, Keyed, Problem, ProblemCode, ProblemJson};
use crate::http::schemas::{EXAMPLE_EMAIL, example_time};
use crate::http::session::SessionInfo;
use crate::http::{ApiTags, AppState, guard};

pub struct AdminApi;

/// An account as an operator sees it: `User` and its state.
#[derive(Debug, Object)]
#[oai(example)]
pub struct AdminUser {
    /// Stable identifier.
    pub id: uuid::Uuid,
    /// The address in its normal form.
    pub email: String,
    /// Whether the address was proven with a code.
    pub email_verified: bool,
    /// Whether the account has a password (an account created by code sign-in has none).
    pub has_password: bool,
    /// When the account was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Language tag used for emails.
    pub locale: String,
    /// Whether an operator disabled the account: it is then answered like an unknown address
    /// on every public operation, and has no live session.
    pub disabled: bool,
    /// When the latest session still kept was started by a sign-in (password, code or
    /// sign-up verification); absent if none is kept.
    #[oai(skip_serializing_if_is_none)]
    pub last_sign_in_at: Option<chrono::DateTime<chrono::Utc>>,
    /// How many live sessions the account has.
    pub active_sessions: u64,
}

impl Example for AdminUser {
    fn example() -> Self {
        Self {
            id: uuid::uuid!("0195f3a1-2b7c-7e10-8a4d-5c6b7a8f9e01"),
            email: EXAMPLE_EMAIL.to_owned(),
            email_verified: true,
            has_password: true,
            created_at: example_time(),
            locale: "en".to_owned(),
            disabled: false,
            last_sign_in_at: Some(example_time()),
            active_sessions: 2,
        }
    }
}

impl From<AdminUserView> for AdminUser {
    fn from(user: AdminUserView) -> Self {
        let account = user.account;
        Self {
            id: account.id,
            email: account.email,
            email_verified: account.email_verified,
            has_password: account.has_password,
            created_at: account.created_at,
            locale: account.locale,
            disabled: user.disabled_at.is_some(),
            last_sign_in_at: user.last_sign_in_at,
            active_sessions: user.active_sessions,
        }
    }
}

/// A page of accounts, newest first.
#[derive(Debug, Object)]
#[oai(example)]
pub struct AdminUserPage {
    /// The accounts of this page.
    pub items: Vec<AdminUser>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

impl Example for AdminUserPage {
    fn example() -> Self {
        Self {
            items: vec![AdminUser::example()],
            next_cursor: None,
        }
    }
}

impl From<UserPage> for AdminUserPage {
    fn from(page: UserPage) -> Self {
        Self {
            items: page.users.into_iter().map(AdminUser::from).collect(),
            next_cursor: page.next.map(|cursor| cursor.encode()),
        }
    }
}

fn unknown_user() -> ProblemJson {
    ProblemJson(Problem::new(
        StatusCode::NOT_FOUND,
        ProblemCode::NotFound,
        "No account has this id.".to_owned(),
    ))
}

#[derive(ApiResponse)]
pub enum ListUsersResponse {
    /// A page of accounts, newest first.
    #[oai(status = 200)]
    Ok(Json<AdminUserPage>),
    /// `invalid_request`: `cursor` is not one this server gave out, or `limit` is not a whole
    /// number from 1 to 100.
    #[oai(status = 400)]
    BadCursor(ProblemJson),
}

#[derive(ApiResponse)]
pub enum AdminUserResponse {
    /// The account, as it is now.
    #[oai(status = 200)]
    Ok(Json<AdminUser>),
    /// `invalid_request`: the id is not a UUID.
    #[oai(status = 400)]
    InvalidRequest(ProblemJson),
    /// `not_found`: no account has this id.
    #[oai(status = 404)]
    NotFound(ProblemJson),
}

impl From<ForUser<AdminUserView>> for AdminUserResponse {
    fn from(outcome: ForUser<AdminUserView>) -> Self {
        match outcome {
            ForUser::Done(user) => Self::Ok(Json(user.into())),
            ForUser::UnknownUser => Self::NotFound(unknown_user()),
        }
    }
}

#[derive(ApiResponse)]
pub enum AdminDoneResponse {
    /// Done.
    #[oai(status = 204)]
    Done,
    /// `invalid_request`: the id is not a UUID.
    #[oai(status = 400)]
    InvalidRequest(ProblemJson),
    /// `not_found`: no account has this id.
    #[oai(status = 404)]
    NotFound(ProblemJson),
}

impl<T> From<ForUser<T>> for AdminDoneResponse {
    fn from(outcome: ForUser<T>) -> Self {
        match outcome {
            ForUser::Done(_) => Self::Done,
            ForUser::UnknownUser => Self::NotFound(unknown_user()),
        }
    }
}

#[derive(ApiResponse)]
pub enum UserSessionsResponse {
    /// The account's live sessions, most recently used first; `current` is always false.
    #[oai(status = 200)]
    Ok(Json<Vec<SessionInfo>>),
    /// `invalid_request`: the id is not a UUID.
    #[oai(status = 400)]
    InvalidRequest(ProblemJson),
    /// `not_found`: no account has this id.
    #[oai(status = 404)]
    NotFound(ProblemJson),
}

#[derive(ApiResponse)]
pub enum UserActivityResponse {
    /// A page of the account's security events, newest first.
    #[oai(status = 200)]
    Ok(Json<ActivityPage>),
    /// `invalid_request`: the id is not a UUID, `cursor` is not one this server gave out, or
    /// `limit` is not a whole number from 1 to 100.
    #[oai(status = 400)]
    BadRequest(ProblemJson),
    /// `not_found`: no account has this id.
    #[oai(status = 404)]
    NotFound(ProblemJson),
}

/// The API key, when it has the `admin` scope (else the 403), as the operator of the request.
fn operator(
    state: &AppState,
    request: &Request,
    auth: &ApiKeyAuth,
) -> Result<Operator, ApiError<Keyed>> {
    let key = auth.require(Scope::Admin)?;
    Ok(Operator::api_key(key.id, guard::requester(state, request)))
}

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// List accounts
    ///
    /// Accounts newest first, a page at a time; `email` keeps those whose address starts
    /// with it (trimmed and lowercased first). Each page costs the same however deep it is.
    /// Needs an API key with the `admin` scope.
    #[oai(path = "/v1/admin/users", method = "get", operation_id = "list_users")]
    async fn list_users(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: ApiKeyAuth,
        /// The start of the addresses to list (e.g. `ada@` or `ada`); all accounts when
        /// absent or empty.
        email: Query<Option<String>>,
        /// Accounts per page, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u64>>,
        /// `next_cursor` of the previous page; absent for the first page.
        cursor: Query<Option<String>>,
    ) -> Result<ListUsersResponse, ApiError<Keyed>> {
        let operator = operator(&state, request, &auth)?;
        let after = match cursor.0.as_deref().map(UserCursor::decode) {
            None => None,
            Some(Some(cursor)) => Some(cursor),
            Some(None) => return Ok(ListUsersResponse::BadCursor(ProblemJson::bad_cursor())),
        };
        let prefix = email.0.map(|email| email.trim().to_lowercase());
        let admin = Admin::of(&state);
        let limit = limit.0.unwrap_or(20);
        let page = admin::list_users(&admin, &operator, prefix.as_deref(), limit, after).await?;
        Ok(ListUsersResponse::Ok(Json(page.into())))
    }

    /// One account
    ///
    /// The account with this id, its state, last sign-in and live sessions counted. Needs an
    /// API key with the `admin` scope.
    #[oai(
        path = "/v1/admin/users/:id",
        method = "get",
        operation_id = "get_user"
    )]
    async fn get_user(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: ApiKeyAuth,
        /// The account's id.
        id: Path<uuid::Uuid>,
    ) -> Result<AdminUserResponse, ApiError<Keyed>> {
        let operator = operator(&state, request, &auth)?;
        let outcome = admin::get_user(&Admin::of(&state), &operator, id.0).await?;
        Ok(outcome.into())
    }

    /// Disable an account
    ///
    /// Ends every session and code of the account at once; from now on it cannot sign in,
    /// refresh or get codes, and every public operation answers it as an unknown address.
    /// Disabling a disabled account changes nothing. Needs an API key with the `admin` scope.
    #[oai(
        path = "/v1/admin/users/:id/disable",
        method = "post",
        operation_id = "disable_user"
    )]
    async fn disable_user(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: ApiKeyAuth,
        /// The account's id.
        id: Path<uuid::Uuid>,
    ) -> Result<AdminUserResponse, ApiError<Keyed>> {
        let operator = operator(&state, request, &auth)?;
        let outcome = admin::disable_user(&Admin::of(&state), &operator, id.0).await?;
        Ok(outcome.into())
    }

    /// Enable an account
    ///
    /// The account can sign in again (the sessions disabling ended stay ended). Enabling an
    /// enabled account changes nothing. Needs an API key with the `admin` scope.
    #[oai(
        path = "/v1/admin/users/:id/enable",
        method = "post",
        operation_id = "enable_user"
    )]
    async fn enable_user(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: ApiKeyAuth,
        /// The account's id.
        id: Path<uuid::Uuid>,
    ) -> Result<AdminUserResponse, ApiError<Keyed>> {
        let operator = operator(&state, request, &auth)?;
        let outcome = admin::enable_user(&Admin::of(&state), &operator, id.0).await?;
        Ok(outcome.into())
    }

    /// Delete an account
    ///
    /// As `delete_account`: the account and everything naming it go at once, and its address
    /// gets the "account deleted" notice. Needs an API key with the `admin` scope.
    #[oai(
        path = "/v1/admin/users/:id",
        method = "delete",
        operation_id = "delete_user",
        transform = "wake_outbox"
    )]
    async fn delete_user(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: ApiKeyAuth,
        /// The account's id.
        id: Path<uuid::Uuid>,
    ) -> Result<AdminDoneResponse, ApiError<Keyed>> {
        let operator = operator(&state, request, &auth)?;
        let outcome = admin::delete_user(&Admin::of(&state), &operator, id.0).await?;
        Ok(outcome.into())
    }

    /// An account's sessions
    ///
    /// The account's live sessions (devices), most recently used first; none is marked
    /// `current`. Needs an API key with the `admin` scope.
    #[oai(
        path = "/v1/admin/users/:id/sessions",
        method = "get",
        operation_id = "list_user_sessions"
    )]
    async fn list_user_sessions(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: ApiKeyAuth,
        /// The account's id.
        id: Path<uuid::Uuid>,
    ) -> Result<UserSessionsResponse, ApiError<Keyed>> {
        let operator = operator(&state, request, &auth)?;
        let outcome = admin::list_user_sessions(&Admin::of(&state), &operator, id.0).await?;
        Ok(match outcome {
            ForUser::Done(sessions) => UserSessionsResponse::Ok(Json(
                sessions.into_iter().map(SessionInfo::from).collect(),
            )),
            ForUser::UnknownUser => UserSessionsResponse::NotFound(unknown_user()),
        })
    }

    /// End an account's sessions
    ///
    /// Ends every session of the account; its access and refresh tokens stop working at
    /// once. Needs an API key with the `admin` scope.
    #[oai(
        path = "/v1/admin/users/:id/sessions",
        method = "delete",
        operation_id = "revoke_user_sessions"
    )]
    async fn revoke_user_sessions(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: ApiKeyAuth,
        /// The account's id.
        id: Path<uuid::Uuid>,
    ) -> Result<AdminDoneResponse, ApiError<Keyed>> {
        let operator = operator(&state, request, &auth)?;
        let outcome = admin::revoke_user_sessions(&Admin::of(&state), &operator, id.0).await?;
        Ok(outcome.into())
    }

    /// An account's security activity
    ///
    /// The account's events, newest first, a page at a time, as `list_activity` shows them
    /// to their owner; an operator's actions carry `api_key_id`. Needs an API key with the
    /// `admin` scope.
    #[oai(
        path = "/v1/admin/users/:id/activity",
        method = "get",
        operation_id = "list_user_activity"
    )]
    async fn list_user_activity(
        &self,
        state: Data<&AppState>,
        request: &Request,
        auth: ApiKeyAuth,
        /// The account's id.
        id: Path<uuid::Uuid>,
        /// Events per page, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u64>>,
        /// `next_cursor` of the previous page; absent for the first page.
        cursor: Query<Option<String>>,
    ) -> Result<UserActivityResponse, ApiError<Keyed>> {
        let operator = operator(&state, request, &auth)?;
        let after = match cursor.0.as_deref().map(Cursor::decode) {
            None => None,
            Some(Some(cursor)) => Some(cursor),
            Some(None) => return Ok(UserActivityResponse::BadRequest(ProblemJson::bad_cursor())),
        };
        let admin = Admin::of(&state);
        let limit = limit.0.unwrap_or(20);
        let outcome = admin::list_user_activity(&admin, &operator, id.0, limit, after).await?;
        Ok(match outcome {
            ForUser::Done(page) => UserActivityResponse::Ok(Json(ActivityPage {
                items: page.events.into_iter().map(ActivityEvent::from).collect(),
                next_cursor: page.next.map(|cursor| cursor.encode()),
            })),
            ForUser::UnknownUser => UserActivityResponse::NotFound(unknown_user()),
        })
    }
}
