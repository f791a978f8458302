//! The help desk's people: `/v1/auth` (agents log in), `/v1/teams`, `/v1/agents` and
//! `/v1/canned-replies`.

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use relais_core::agent::{AssignmentRule, Role, check_name};
use relais_core::tenant::Scope;
use relais_engine::agents::{AgentRequest, DEFAULT_CAPACITY};
use relais_store::{Agent, AgentChange, CannedReply, Team, TeamSpec};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/teams", get(list_teams))
        .route(
            "/teams/{name}",
            get(get_team).put(put_team).delete(delete_team),
        )
        .route("/agents", get(list_agents).post(create_agent))
        .route("/agents/me", get(me).patch(update_me))
        .route(
            "/agents/{id}",
            get(get_agent).patch(update_agent).delete(delete_agent),
        )
        .route("/canned-replies", get(list_canned))
        .route(
            "/canned-replies/{name}",
            get(get_canned).put(put_canned).delete(delete_canned),
        )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The tenant's name or id; needed only when agents of several tenants share the
    /// e-mail.
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send it as `Authorization: Bearer <token>` (or `?access_token=` on the event
    /// stream). Shown once.
    pub token: String,
    #[schema(value_type = String)]
    pub expires_at: jiff::Timestamp,
    pub agent: AgentView,
}

/// Logs an agent in: a session token valid 12 hours.
#[utoipa::path(post, path = "/v1/auth/login", tag = "agents", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = crate::problem::Problem),
        (status = 429, body = crate::problem::Problem)))]
pub async fn login(
    State(state): State<AppState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<axum::Json<LoginResponse>> {
    // A request that did not come over a socket (the router called in-process) counts
    // as one unknown source.
    let source = peer.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| p.0.0.ip());
    let email = relais_core::agent::normalize_email(&req.email)
        .unwrap_or_else(|_| req.email.trim().to_lowercase());
    // The wait comes before the password is checked, whatever it is, so that a guess
    // cannot be read from how fast the answer comes.
    let admission = state
        .login_attempts()
        .admit(source, &email, tokio::time::Instant::now());
    match admission {
        relais_smpp::Admission::After(wait) if wait.is_zero() => {}
        relais_smpp::Admission::After(wait) => tokio::time::sleep(wait).await,
        relais_smpp::Admission::Refuse => {
            tracing::warn!(%source, email = %email, "login refused unchecked: too many failed attempts waiting");
            return Err(ApiError::too_many_attempts(
                "too many failed logins from this address or for this e-mail; try again later",
            ));
        }
    }
    let session = match state
        .desk
        .login(req.tenant.as_deref(), &req.email, &req.password)
        .await
    {
        Ok(session) => {
            state.login_attempts().succeeded(source, &email);
            session
        }
        Err(e @ relais_engine::agents::DeskError::WrongCredentials) => {
            let now = tokio::time::Instant::now();
            let mut attempts = state.login_attempts();
            let failures = attempts.failed(source, &email, now);
            let next_wait = attempts.pending(source, &email, now);
            drop(attempts);
            tracing::warn!(%source, email = %email, failures, next_login_waits_ms = next_wait.as_millis(), "login failed");
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    Ok(axum::Json(LoginResponse {
        token: session.token,
        expires_at: session.expires_at,
        agent: session.agent.into(),
    }))
}

/// Ends the session whose token authenticates the request.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "agents",
    responses((status = 204), (status = 401, body = crate::problem::Problem)))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    if caller.agent.is_none() {
        return Err(ApiError::bad_request(
            "this request was made with an API key, not a session token: there is no session to end",
        ));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' ').map(|(_, t)| t.trim()))
        .unwrap_or_default();
    state.desk.logout(token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A team as the API shows and takes it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamBody {
    #[serde(default, skip_deserializing)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `round_robin` (default), `least_busy` or `manual`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub assignment: AssignmentRule,
    /// An agent's first answer is due within this many minutes of the handoff.
    #[serde(default)]
    pub first_response_minutes: Option<u32>,
    /// Each later answer is due within this many minutes of the customer's message.
    #[serde(default)]
    pub next_response_minutes: Option<u32>,
    /// Conversations handed to no team in particular join this one.
    #[serde(default)]
    pub default: bool,
    /// Ask the customer for a rating (1 to 5) when a conversation is resolved.
    #[serde(default)]
    pub csat: bool,
}

impl From<Team> for TeamBody {
    fn from(t: Team) -> Self {
        TeamBody {
            name: t.name,
            description: t.description,
            assignment: t.assignment,
            first_response_minutes: t.first_response_minutes,
            next_response_minutes: t.next_response_minutes,
            default: t.is_default,
            csat: t.csat,
        }
    }
}

/// Minutes an SLA target may span at most: 30 days.
const MAX_SLA_MINUTES: u32 = 30 * 24 * 60;

#[utoipa::path(get, path = "/v1/teams", tag = "agents", responses((status = 200, body = [TeamBody])))]
pub async fn list_teams(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<TeamBody>>> {
    caller.require(Scope::Read)?;
    let teams = state.store.teams(&caller.tenant_id).await?;
    Ok(axum::Json(teams.into_iter().map(TeamBody::from).collect()))
}

#[utoipa::path(get, path = "/v1/teams/{name}", tag = "agents",
    responses((status = 200, body = TeamBody), (status = 404, body = crate::problem::Problem)))]
pub async fn get_team(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<axum::Json<TeamBody>> {
    caller.require(Scope::Read)?;
    state
        .store
        .team(&caller.tenant_id, &name)
        .await?
        .map(|t| axum::Json(t.into()))
        .ok_or_else(|| ApiError::not_found(format!("team {name}")))
}

/// Creates or replaces a team.
#[utoipa::path(put, path = "/v1/teams/{name}", tag = "agents", request_body = TeamBody,
    responses((status = 200, body = TeamBody), (status = 422, body = crate::problem::Problem)))]
pub async fn put_team(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<TeamBody>,
) -> ApiResult<axum::Json<TeamBody>> {
    caller.require(Scope::Admin)?;
    check_name("team", &name).map_err(|e| ApiError::bad_request(format!("bad path: {e}")))?;
    for (pointer, minutes) in [
        ("/first_response_minutes", body.first_response_minutes),
        ("/next_response_minutes", body.next_response_minutes),
    ] {
        if let Some(m) = minutes
            && !(1..=MAX_SLA_MINUTES).contains(&m)
        {
            return Err(ApiError::invalid_field(
                pointer,
                format!("an SLA target is from 1 to {MAX_SLA_MINUTES} minutes (30 days)"),
            ));
        }
    }
    if body.description.as_ref().is_some_and(|d| d.len() > 1000) {
        return Err(ApiError::invalid_field(
            "/description",
            "a description is at most 1,000 bytes",
        ));
    }
    let spec = TeamSpec {
        description: body.description,
        assignment: body.assignment,
        first_response_minutes: body.first_response_minutes,
        next_response_minutes: body.next_response_minutes,
        is_default: body.default,
        csat: body.csat,
    };
    let team = state
        .store
        .put_team(&caller.tenant_id, &name, &spec, state.clock.now())
        .await?;
    // A rule that now assigns may find conversations waiting.
    state.desk.assign_waiting(&team).await?;
    Ok(axum::Json(team.into()))
}

/// Deletes a team; its conversations keep its name until moved.
#[utoipa::path(delete, path = "/v1/teams/{name}", tag = "agents",
    responses((status = 204), (status = 404, body = crate::problem::Problem)))]
pub async fn delete_team(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if state.store.delete_team(&caller.tenant_id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("team {name}")))
    }
}

/// An agent as the API shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    pub id: String,
    pub email: String,
    pub name: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub teams: Vec<String>,
    pub capacity: u32,
    pub available: bool,
    /// Conversations assigned to them and open now (in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_conversations: Option<u32>,
    #[schema(value_type = String)]
    pub created_at: jiff::Timestamp,
}

impl From<Agent> for AgentView {
    fn from(a: Agent) -> Self {
        AgentView {
            id: a.id,
            email: a.email,
            name: a.name,
            role: a.role,
            teams: a.teams,
            capacity: a.capacity,
            available: a.available,
            open_conversations: None,
            created_at: a.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgentBody {
    pub email: String,
    pub name: String,
    /// At least 10 characters; stored as an argon2id hash.
    pub password: String,
    /// `agent` (default) or `admin`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    #[serde(default)]
    pub teams: Vec<String>,
    /// Open conversations assigned automatically at most (default 5).
    #[serde(default)]
    pub capacity: Option<u32>,
}

#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = NewAgentBody,
    responses((status = 201, body = AgentView), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn create_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewAgentBody>,
) -> ApiResult<(StatusCode, axum::Json<AgentView>)> {
    caller.require(Scope::Admin)?;
    let agent = state
        .desk
        .create_agent(
            &caller.tenant_id,
            AgentRequest {
                email: body.email,
                name: body.name,
                password: body.password,
                role: body.role.unwrap_or(Role::Agent),
                teams: body.teams,
                capacity: Some(body.capacity.unwrap_or(DEFAULT_CAPACITY)),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(agent.into())))
}

/// The tenant's agents with how many open conversations each has.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", responses((status = 200, body = [AgentView])))]
pub async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<AgentView>>> {
    caller.require(Scope::Read)?;
    let counts = state.store.open_counts(&caller.tenant_id).await?;
    let agents = state.store.agents(&caller.tenant_id).await?;
    Ok(axum::Json(
        agents
            .into_iter()
            .map(|a| {
                let open = counts
                    .iter()
                    .find(|(id, _)| *id == a.id)
                    .map(|(_, n)| *n)
                    .unwrap_or(0);
                AgentView {
                    open_conversations: Some(open),
                    ..a.into()
                }
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents",
    responses((status = 200, body = AgentView), (status = 404, body = crate::problem::Problem)))]
pub async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<AgentView>> {
    caller.require(Scope::Read)?;
    state
        .store
        .agent(&caller.tenant_id, &id)
        .await?
        .map(|a| axum::Json(a.into()))
        .ok_or_else(|| ApiError::not_found(format!("agent {id}")))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub available: Option<bool>,
    /// Admins only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    /// Admins only.
    #[serde(default)]
    pub teams: Option<Vec<String>>,
    /// Admins only.
    #[serde(default)]
    pub capacity: Option<u32>,
}

impl AgentUpdate {
    fn into_change(self) -> (AgentChange, Option<String>) {
        (
            AgentChange {
                name: self.name,
                role: self.role,
                password_hash: None,
                capacity: self.capacity,
                available: self.available,
                teams: self.teams,
            },
            self.password,
        )
    }
}

/// Changes an agent (admins).
#[utoipa::path(patch, path = "/v1/agents/{id}", tag = "agents", request_body = AgentUpdate,
    responses((status = 200, body = AgentView), (status = 404, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn update_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AgentUpdate>,
) -> ApiResult<axum::Json<AgentView>> {
    caller.require(Scope::Admin)?;
    let (change, password) = body.into_change();
    let agent = state
        .desk
        .update_agent(&caller.tenant_id, &id, change, password)
        .await?;
    Ok(axum::Json(agent.into()))
}

/// Deletes an agent; their open conversations go back to their team's queue.
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents",
    responses((status = 204), (status = 404, body = crate::problem::Problem)))]
pub async fn delete_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if state
        .store
        .delete_agent(&caller.tenant_id, &id, state.clock.now())
        .await?
    {
        for team in state.store.teams(&caller.tenant_id).await? {
            state.desk.assign_waiting(&team).await?;
        }
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("agent {id}")))
    }
}

fn agent_of(caller: &Caller) -> ApiResult<&Agent> {
    caller.agent.as_ref().ok_or_else(|| {
        ApiError::bad_request(
            "this route is for agents: log in (POST /v1/auth/login) and send the session token",
        )
    })
}

/// The agent the session belongs to.
#[utoipa::path(get, path = "/v1/agents/me", tag = "agents", responses((status = 200, body = AgentView)))]
pub async fn me(caller: Caller) -> ApiResult<axum::Json<AgentView>> {
    Ok(axum::Json(agent_of(&caller)?.clone().into()))
}

/// An agent changes their own name, password or availability.
#[utoipa::path(patch, path = "/v1/agents/me", tag = "agents", request_body = AgentUpdate,
    responses((status = 200, body = AgentView), (status = 403, body = crate::problem::Problem)))]
pub async fn update_me(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AgentUpdate>,
) -> ApiResult<axum::Json<AgentView>> {
    let me = agent_of(&caller)?;
    if me.role != Role::Admin
        && (body.role.is_some() || body.teams.is_some() || body.capacity.is_some())
    {
        return Err(ApiError::forbidden(
            "only an admin changes roles, teams and capacities",
        ));
    }
    let (change, password) = body.into_change();
    let agent = state
        .desk
        .update_agent(&caller.tenant_id, &me.id, change, password)
        .await?;
    Ok(axum::Json(agent.into()))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CannedBody {
    #[serde(default, skip_deserializing)]
    pub name: String,
    /// A template: `{{ contact.first_name }}`, `{{ agent.name }}`, and the variables a reply
    /// passes.
    pub text: String,
}

impl From<CannedReply> for CannedBody {
    fn from(c: CannedReply) -> Self {
        CannedBody {
            name: c.name,
            text: c.text,
        }
    }
}

#[utoipa::path(get, path = "/v1/canned-replies", tag = "agents", responses((status = 200, body = [CannedBody])))]
pub async fn list_canned(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<CannedBody>>> {
    caller.require(Scope::Read)?;
    let replies = state.store.canned_replies(&caller.tenant_id).await?;
    Ok(axum::Json(
        replies.into_iter().map(CannedBody::from).collect(),
    ))
}

#[utoipa::path(get, path = "/v1/canned-replies/{name}", tag = "agents",
    responses((status = 200, body = CannedBody), (status = 404, body = crate::problem::Problem)))]
pub async fn get_canned(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<axum::Json<CannedBody>> {
    caller.require(Scope::Read)?;
    state
        .store
        .canned_reply(&caller.tenant_id, &name)
        .await?
        .map(|c| axum::Json(c.into()))
        .ok_or_else(|| ApiError::not_found(format!("canned reply {name}")))
}

/// Creates or replaces a canned reply; a template that does not compile is refused.
#[utoipa::path(put, path = "/v1/canned-replies/{name}", tag = "agents", request_body = CannedBody,
    responses((status = 200, body = CannedBody), (status = 422, body = crate::problem::Problem)))]
pub async fn put_canned(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<CannedBody>,
) -> ApiResult<axum::Json<CannedBody>> {
    caller.require(Scope::Admin)?;
    check_name("canned reply", &name)
        .map_err(|e| ApiError::bad_request(format!("bad path: {e}")))?;
    if body.text.trim().is_empty() || body.text.len() > 4096 {
        return Err(ApiError::invalid_field(
            "/text",
            "a canned reply is 1 to 4,096 bytes",
        ));
    }
    relais_core::template::Template::compile(&body.text)
        .map_err(|e| ApiError::invalid_field("/text", e.to_string()))?;
    let saved = state
        .store
        .put_canned_reply(&caller.tenant_id, &name, &body.text, state.clock.now())
        .await?;
    Ok(axum::Json(saved.into()))
}

#[utoipa::path(delete, path = "/v1/canned-replies/{name}", tag = "agents",
    responses((status = 204), (status = 404, body = crate::problem::Problem)))]
pub async fn delete_canned(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if state
        .store
        .delete_canned_reply(&caller.tenant_id, &name)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("canned reply {name}")))
    }
}
